"""Shared domain code of the GTZAN genre platform: audio I/O, features, splits, models, registry."""

__version__ = "0.1.0"
