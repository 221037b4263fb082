"""The app's routers, one per concern: api (/api/v1), mlflow_compat (/invocations), health, pages (HTML)."""
