"""``dynlab.kernels.allocator``: freed tensors' memory is reused, not faulted in again, once it is switched on."""
import os
import subprocess
import sys

import pytest

# One "step" allocates eight 4 MiB tensors and frees them; the step after it allocates them again.
# Each run is a fresh process. glibc's own threshold for serving a block with mmap moves with what the
# process has freed, so whether its defaults fault these tensors in again varies from run to run; the
# environment pins it at its starting value (128 KiB) and trims at once, so that without
# ``keep_freed_memory`` every step faults its tensors in.
STEPS = """
import resource, sys, torch
from dynlab.kernels.allocator import keep_freed_memory
if sys.argv[1] == "keep" and not keep_freed_memory():
    sys.exit("keep_freed_memory() did not take effect")
def step():
    tensors = [torch.ones(2**20) for _ in range(8)]
    del tensors
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


GLIBC_AT_ITS_WORST = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _page_faults(mode: str) -> int:
    env = dict(os.environ, **GLIBC_AT_ITS_WORST)
    result = subprocess.run([sys.executable, "-c", STEPS, mode], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's, on Linux")
def test_freed_tensors_are_reused_without_page_faults():
    returned = _page_faults("return")
    kept = _page_faults("keep")
    assert returned >= 5 * 8 * 1024 * 3 // 4, f"only {returned} page faults where every 4 KiB page should fault"
    assert kept <= 16, f"{kept} page faults in 5 steps that only reuse freed memory"

