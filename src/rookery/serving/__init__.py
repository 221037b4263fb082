"""`rookery serve`: the REST API, the web page, the prediction history and the model lifecycle.

`rookery.serving.app.create_app()` builds the FastAPI app. Importing this package imports nothing heavy.
"""
