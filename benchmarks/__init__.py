"""dynlab's benchmarks: ``python -m benchmarks MODE`` from the repository root (``--help`` lists the modes)."""
