"""A small synthetic stand-in for an image set, for tests and dry runs: no files."""

from __future__ import annotations

from typing import Protocol

import numpy as np

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class Settings(Protocol):
    train_size: int
    test_size: int
    image_size: int
    num_classes: int
    noise: float


def synthetic(cfg: Settings, seed: int = 0) -> Arrays:
    """Class prototypes plus noise, as uint8 images: deterministic for a seed and learnable
    by a small MLP in a few epochs. Same layout as Fashion-MNIST, so every code path
    after loading is shared."""
    rng = np.random.default_rng(seed)
    side, classes = cfg.image_size, cfg.num_classes
    # A shared background plus a faint class pattern: learnable, yet not at once.
    background = rng.uniform(0.2, 0.8, size=(side, side))
    prototypes = background + rng.uniform(-0.3, 0.3, size=(classes, side, side))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % classes
        rng.shuffle(labels)
        noisy = prototypes[labels] + rng.normal(0.0, cfg.noise, size=(n, side, side))
        return np.clip(noisy * 255.0, 0, 255).astype(np.uint8), labels.astype(np.uint8)

    return draw(cfg.train_size), draw(cfg.test_size)
