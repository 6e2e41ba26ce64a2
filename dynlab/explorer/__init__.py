"""The explorer: one widget to look at what every variant attends to, on every task, sample by sample.

``Explorer.from_course()`` opens every variant x task of the course models; ``Explorer(models, samples,
variants, tasks)`` any models (a notebook's runs, a study's grid). The parts, each small:

- ``scene``: the choices (``View``) and what one model computes for them on one sample (``Row``);
- ``knobs``: temperature, gate offset and rotation, each put back after use;
- ``predictions``: the predictions on the offered samples and which are misclassified;
- ``picture``: the figure and its caption, drawn with ``dynlab.viz``;
- ``sources``: the course's models and samples, loaded when first shown;
- ``widget``: the ipywidgets controls around them.
"""
from .scene import View, attention_layers
from .widget import Explorer

__all__ = ["Explorer", "View", "attention_layers"]
