"""A Flask server that speaks TensorFlow Serving's REST API."""
