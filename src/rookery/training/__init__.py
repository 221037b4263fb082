"""Training a YOLO detector with Ultralytics, tracked in MLflow."""
