from rookery.cli import app

app(prog_name="rookery")
