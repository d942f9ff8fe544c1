"""Serving: a registry version as an immutable bundle (its model files and its own code), opened
without TensorFlow or MLflow, by `predict`, the HTTP scoring service and monitoring."""
