"""Settings for the whole test suite.

Training on a CPU with AMX uses bfloat16 autocast (``dynlab.device``). The tests compare losses and
outputs with float32 arithmetic, so they run in float32 on any CPU, and notebooks started from them
(nbval kernels inherit the environment) do too; ``tests/test_cpu_bf16.py`` tests the bfloat16 path.
"""
import os

os.environ["DYNLAB_CPU_BF16"] = "0"
