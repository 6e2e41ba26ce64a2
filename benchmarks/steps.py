"""Training-step, inference, memory and MAC ratios of every variant's ResNet-18 to ``base``.

    python -m benchmarks steps                                  # ImageNet stem, 64x64, batch 32, CPU
    python -m benchmarks steps --stem small --size 32
    python -m benchmarks steps --device cuda --compile

The same as ``dynlab bench``; ``dynlab.bench`` says what is measured.
"""
from dynlab.bench import main  # noqa: F401
