"""The reference notebook's Leaky ReLU cell, as written there (inputs / 255.0 as float64,
default compile, one step per call), timed per epoch. Prints one JSON line.

Only two things differ from the notebook: the images come from the same IDX files the
entry point reads (the notebook's keras.datasets loader would look in ~/.keras), and
keras.utils.set_random_seed(42) is added, because under Keras 3 the notebook's
tf.random.set_seed / np.random.seed leave the initializers unseeded; with it both
sides start from the same weights, so the comparison is about speed alone.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow import keras

from experiments.images.idx import FASHION_MNIST, read_folder


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def main(folder: str, epochs: int) -> None:
    images = read_folder(Path(folder), FASHION_MNIST)
    X_train_full, y_train_full, X_test = images.x_train, images.y_train, images.x_test
    X_train_full = X_train_full / 255.0
    X_test = X_test / 255.0
    X_valid, X_train = X_train_full[:5000], X_train_full[5000:]
    y_valid, y_train = y_train_full[:5000], y_train_full[5000:]

    tf.random.set_seed(42)
    np.random.seed(42)
    keras.utils.set_random_seed(42)

    model = keras.models.Sequential([
        keras.layers.Flatten(input_shape=[28, 28]),
        keras.layers.Dense(300, kernel_initializer="he_normal"),
        keras.layers.LeakyReLU(),
        keras.layers.Dense(100, kernel_initializer="he_normal"),
        keras.layers.LeakyReLU(),
        keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=keras.optimizers.SGD(learning_rate=1e-3),
                  metrics=["accuracy"])  # fmt: skip
    timer = EpochTimer()
    history = model.fit(X_train, y_train, epochs=epochs, validation_data=(X_valid, y_valid),
                        callbacks=[timer], verbose=0)  # fmt: skip
    print(
        json.dumps(
            {"epoch_seconds": timer.seconds, "val_accuracy": history.history["val_accuracy"]}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
