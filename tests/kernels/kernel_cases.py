"""Random convolution geometries the kernel tests share."""
import random


def random_case(seed: int):
    """A random conv geometry: (dim, c_in, c_out, groups, kernel, stride, padding, dilation, size)."""
    rng = random.Random(seed)
    dim = rng.choice((1, 2))
    groups = rng.choice((1, 2, 3))
    c_in = groups * rng.choice((1, 2))
    c_out = groups * rng.choice((1, 2))
    if rng.random() < 0.25:  # depthwise
        c_in = c_out = groups = rng.choice((2, 3))
    kernel = tuple(rng.choice((1, 2, 3, 5)) for _ in range(dim))
    stride = tuple(rng.choice((1, 2, 3)) for _ in range(dim))
    dilation = tuple(rng.choice((1, 2)) for _ in range(dim))
    padding = tuple(rng.randint(0, d * (k - 1)) for k, d in zip(kernel, dilation))
    size = tuple(d * (k - 1) + 1 + rng.randint(0, 6) for k, d in zip(kernel, dilation))
    return dim, c_in, c_out, groups, kernel, stride, padding, dilation, size


CASES = [random_case(seed) for seed in range(24)]
