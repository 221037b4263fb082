"""Model families: yolo (Ultralytics, wrapped in training/ and inference/) and heatmap (point counting)."""
