"""The model as an MLflow model (pyfunc with a signature) and the registry with its promotion gate."""
