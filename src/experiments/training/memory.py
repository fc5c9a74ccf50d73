"""A model or batch too large for the machine's memory, said in one line.

A net whose weights alone exceed the memory the machine has is refused before
TensorFlow starts (`check_weights_fit`): TensorFlow would first retry the allocation for
10 s, then fail. Whatever still does not fit (activations, a batch, optimizer slots)
TensorFlow refuses with a ResourceExhaustedError whose message runs over many lines (the
op, the device, the allocator); numpy and Python raise MemoryError. Either ends the run
FAILED with one line that says what did not fit and which keys make it smaller.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

FLOAT32_BYTES = 4

SMALLER = "use smaller layers (model.hidden, model.repeat_width)"


class OutOfMemory(RuntimeError):
    """An allocation the machine could not make; the message is one line."""


def describe(error: BaseException) -> str:
    """`out of memory (OOM when allocating tensor with shape[100000,100000] and type
    float): the model does not fit ...`."""
    text = " ".join(str(error).split())
    found = re.search(r"OOM when allocating tensor with shape\[[^\]]*\] and type \w+", text)
    detail = found.group(0) if found else (text[:200] or type(error).__name__)
    return (
        f"out of memory ({detail}): the model does not fit in this machine's memory: "
        f"{SMALLER} or a smaller training.batch_size"
    )


@contextmanager
def out_of_memory_in_one_line() -> Iterator[None]:
    """Raises OutOfMemory, one line, for what TensorFlow or Python could not allocate."""
    import tensorflow as tf

    try:
        yield
    except (MemoryError, tf.errors.ResourceExhaustedError) as e:
        raise OutOfMemory(describe(e)) from None


def available_bytes() -> int:
    """Memory this machine can still give: Linux's MemAvailable plus free swap, else
    all of its physical memory."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        kib = int(fields["MemAvailable"].split()[0]) + int(fields["SwapFree"].split()[0])
        return kib * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def dense_weights(widths: list[int]) -> int:
    """Kernels and biases of Dense layers of these widths, input first, output last."""
    return sum(a * b + b for a, b in pairwise(widths))


def check_weights_fit(
    hidden: list[int], input_shape: tuple[int, ...], num_classes: int, available: int
) -> None:
    """Raises OutOfMemory when the net's weights alone, as float32, exceed `available`
    bytes: a bound that never refuses a net that could fit (training needs more)."""
    weights = dense_weights([math.prod(input_shape), *hidden, num_classes])
    needed = weights * FLOAT32_BYTES
    if needed > available:
        raise OutOfMemory(
            f"out of memory: the net's {weights:,} weights need {needed / 1e9:,.1f} GB as "
            f"float32, more than the {available / 1e9:,.1f} GB this machine has free: {SMALLER}"
        )
