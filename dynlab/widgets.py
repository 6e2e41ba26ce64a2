"""The explorer, under the name the notebooks import it by (it lives in ``dynlab.explorer``)."""
from .explorer import Explorer, View, attention_layers

__all__ = ["Explorer", "View", "attention_layers"]
