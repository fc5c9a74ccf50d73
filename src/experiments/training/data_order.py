"""The training batches of a fit: epoch e's order is a function of the seed and e alone.

Keras shuffles an array input with a stateful random op inside its own tf.data pipeline,
so the order of epoch e depends on everything the process drew before it: a run that
continues from a checkpoint in a new process would see other batches than the run that
was never stopped. Here each epoch's permutation is a stateless shuffle seeded by
(seed, epoch), so a continued run trains on exactly the batches of an uninterrupted one.
The pipeline is Keras' own for arrays otherwise (batches of indices, gathered from the
arrays held once), so an epoch costs what it cost before.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf


def steps_per_epoch(train_size: int, batch_size: int, cap: int | None) -> int:
    """Batches in an epoch (the last one partial), at most `cap`."""
    steps = math.ceil(train_size / batch_size)
    return steps if cap is None else min(steps, cap)


class EpochBatches(keras.callbacks.Callback):
    """The training batches of a fit, as a tf.data dataset of one epoch that Keras
    iterates afresh each epoch, and the callback that tells it which epoch comes:
    `step_offset + epoch` (a transfer phase's epochs are its run's epochs after the
    earlier phases'). Its batches: `steps` of a stateless permutation seeded by (seed,
    epoch). Keras reads one epoch to its end, however many steps a compiled call runs."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        seed: int,
        batch_size: int,
        steps: int,
        step_offset: int = 0,
    ):
        super().__init__()
        self.step_offset = step_offset
        # Read when an epoch's iterator starts, which Keras creates after on_epoch_begin.
        self.epoch = tf.Variable(step_offset, dtype=tf.int64, trainable=False)
        size = len(y)
        full = size // batch_size

        def order(_):
            key = tf.stack([tf.constant(seed, tf.int64), self.epoch.read_value()])
            shuffled = tf.random.experimental.stateless_shuffle(tf.range(size, dtype=tf.int64), key)
            # Whole batches as rows of one reshaped tensor, then the partial one: Keras'
            # way, far cheaper than batching `size` scalars one by one.
            batches = tf.data.Dataset.from_tensor_slices(
                tf.reshape(shuffled[: full * batch_size], [full, batch_size])
            )
            if size % batch_size:
                batches = batches.concatenate(
                    tf.data.Dataset.from_tensors(shuffled[full * batch_size :])
                )
            return batches.take(steps)

        indices = tf.data.Dataset.range(1).flat_map(order)
        arrays = tf.data.Dataset.from_tensors((x, y)).repeat()
        self.dataset = (
            tf.data.Dataset.zip((indices, arrays))
            .map(
                lambda batch, data: (tf.gather(data[0], batch), tf.gather(data[1], batch)),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            # The epoch's length, so that Keras' progress bar knows it from the start.
            .apply(tf.data.experimental.assert_cardinality(steps))
            .prefetch(tf.data.AUTOTUNE)
        )

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(self.step_offset + epoch)
