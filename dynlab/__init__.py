"""dynlab: a course kit on dynamic convolutional neural networks."""
__version__ = "0.1.0"
