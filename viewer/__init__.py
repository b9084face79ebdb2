"""radview: a desktop radiology viewer with an AI second reader."""

__version__ = "0.1.0"
