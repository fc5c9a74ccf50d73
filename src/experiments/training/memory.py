"""A model or batch too large for the machine's memory, said in one line.

TensorFlow refuses an allocation it cannot make with a ResourceExhaustedError whose
message runs over many lines (the op, the device, the allocator); numpy and Python raise
MemoryError. Either ends the run FAILED with one line that says what did not fit and
which keys make it smaller.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

ADVICE = (
    "the model does not fit in this machine's memory: use smaller layers (model.hidden, "
    "model.repeat_width) or a smaller training.batch_size"
)


class OutOfMemory(RuntimeError):
    """An allocation the machine could not make; the message is one line."""


def describe(error: BaseException) -> str:
    """`out of memory (OOM when allocating tensor with shape[100000,100000] and type
    float): the model does not fit ...`."""
    text = " ".join(str(error).split())
    found = re.search(r"OOM when allocating tensor with shape\[[^\]]*\] and type \w+", text)
    detail = found.group(0) if found else (text[:200] or type(error).__name__)
    return f"out of memory ({detail}): {ADVICE}"


@contextmanager
def out_of_memory_in_one_line() -> Iterator[None]:
    """Raises OutOfMemory, one line, for what TensorFlow or Python could not allocate."""
    import tensorflow as tf

    try:
        yield
    except (MemoryError, tf.errors.ResourceExhaustedError) as e:
        raise OutOfMemory(describe(e)) from None
