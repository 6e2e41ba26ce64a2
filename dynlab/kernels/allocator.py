"""Keep freed CPU memory in the process, so that each training step does not fault its tensors in anew.

glibc's malloc hands out large blocks with ``mmap`` and returns them to the kernel when they are
freed; what counts as large moves with what the process has freed so far (from 128 KiB up to 32 MiB),
and freed memory at the top of the heap is returned too. A training step frees and allocates the
same tensors every time, so where glibc returned them, every step gets fresh pages, which the kernel
zero-fills one 4 KiB page fault at a time (``python -m benchmarks faults`` counts them). How many pages
a process faults in under glibc's defaults also varies from process to process, one more source of
run-to-run noise.

``keep_freed_memory`` pins the threshold at its largest value and stops trimming: blocks up to
32 MiB are served from the heap and stay there for reuse, as a caching allocator would keep them.
The process's resident memory then stays near its peak instead of falling back between steps.
"""
from __future__ import annotations

import ctypes
import sys

#: ``mallopt`` parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: the largest mmap threshold glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2)
LARGEST_MMAP_THRESHOLD = 32 * 2**20
#: free heap memory kept before glibc gives any back (mallopt takes a C int)
KEPT_FREE_MEMORY = 2**31 - 1

_applied = False


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks of up to 32 MiB for reuse; True where it took effect.

    A no-op returning False off Linux or with a C library other than glibc (musl, macOS, Windows).
    Process-wide and idempotent; ``dynlab.kernels.prepare_process`` calls it (``fit`` and ``dynlab bench``).
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _applied = (mallopt(M_MMAP_THRESHOLD, LARGEST_MMAP_THRESHOLD) == 1
                and mallopt(M_TRIM_THRESHOLD, KEPT_FREE_MEMORY) == 1)
    return _applied
