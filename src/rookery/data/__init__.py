"""From painted dots and other annotations to a tiled YOLO data set."""
