"""The `cnn` preset's net written as plain Keras code, the way its docs would show it:
six 3x3 convs (16, 32, 64 channels, 2x2 max pooling between stages), BatchNorm before
each ReLU, global average pooling, softmax; Adam with Keras' CosineDecay (a linear warm-up
to 3e-3 over 10% of the steps, then a cosine down to 0: the preset's warmup_cosine),
batch 64, Keras' default compile (one step per call), float32 inputs. Timed per epoch (validation included, as the entry
point's epoch_seconds). Prints one JSON line.

The images are the entry point's (the same IDX files, the first `train_size` training
images, the first 5,000 of them for validation), and keras.utils.set_random_seed(42) as
the entry point's seed, so both sides start from the same data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from tensorflow import keras

from benchmarks.notebook_reference import EpochTimer
from experiments.images.idx import FASHION_MNIST, read_folder


def conv_block(filters: int) -> list[keras.layers.Layer]:
    return [
        keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                            kernel_initializer="he_normal"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
    ]  # fmt: skip


def main(folder: str, epochs: int, train_size: int) -> None:
    images = read_folder(Path(folder), FASHION_MNIST)
    x = images.x_train[:train_size].astype(np.float32) / 255.0
    y = images.y_train[:train_size]
    x_valid, x_train = x[:5000], x[5000:]
    y_valid, y_train = y[:5000], y[5000:]

    keras.utils.set_random_seed(42)
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Reshape((28, 28, 1)),
        *conv_block(16), *conv_block(16),
        keras.layers.MaxPooling2D(2),
        *conv_block(32), *conv_block(32),
        keras.layers.MaxPooling2D(2),
        *conv_block(64), *conv_block(64),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    steps = epochs * -(-len(x_train) // 64)
    warmup = int(0.1 * steps)
    rate = keras.optimizers.schedules.CosineDecay(0.0, steps - warmup, alpha=0.0,
                                                  warmup_target=3e-3, warmup_steps=warmup)  # fmt: skip
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=keras.optimizers.Adam(learning_rate=rate),
                  metrics=["accuracy"])  # fmt: skip
    timer = EpochTimer()
    history = model.fit(x_train, y_train, batch_size=64, epochs=epochs,
                        validation_data=(x_valid, y_valid), callbacks=[timer], verbose=0)  # fmt: skip
    print(
        json.dumps(
            {"epoch_seconds": timer.seconds, "val_accuracy": history.history["val_accuracy"],
             "params": model.count_params()}
        )
    )  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
