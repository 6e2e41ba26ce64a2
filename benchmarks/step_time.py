"""Training-step, inference, memory and MAC ratios of every variant's ResNet-18 to ``base``.

    python benchmarks/step_time.py                                  # ImageNet stem, 64x64, batch 32, CPU
    python benchmarks/step_time.py --stem small --size 32
    python benchmarks/step_time.py --device cuda --compile

A thin wrapper over ``dynlab.bench`` (also ``dynlab bench``); see its docstring for what is measured.
"""
import sys

from dynlab.bench import main

if __name__ == "__main__":
    sys.exit(main())
