"""A run's data as MLflow dataset inputs: one per split, with context `training`,
`validation` or `test`, so the runs table and the run page show what each run read.

Each dataset carries a digest of the arrays themselves (two copies of the data that
differ anywhere are told apart; MLflow's own NumPy digest hashes a sample of rows), its
source (the folder of the data files or the npz file they came from, or the synthetic
generator and its settings), and the shape and schema MLflow derives from the arrays.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def digest(*arrays: np.ndarray) -> str:
    """A digest of every byte, shape and dtype of the arrays (BLAKE2: about 1 GB/s)."""
    hasher = hashlib.blake2b(digest_size=10)
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        hasher.update(f"{contiguous.dtype}{contiguous.shape}".encode())
        hasher.update(memoryview(contiguous).cast("B"))
    return hasher.hexdigest()


def source_of(data_cfg, folder: str | None) -> Any:
    """Where the arrays came from: the data files' folder or the npz file, or the
    generator's settings."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import get_registered_sources

    if folder is not None:
        # Named directly: MLflow registers its local-folder source twice and, given a
        # bare path, warns that it cannot tell which one is meant.
        local = next(
            s for s in get_registered_sources() if s.__name__ == "LocalArtifactDatasetSource"
        )
        return local(folder)
    settings = {
        k: str(getattr(data_cfg, k))
        for k in ("train_size", "test_size", "image_size", "num_classes", "noise")
        if getattr(data_cfg, k, None) is not None
    }
    return CodeDatasetSource({"generator": "experiments.data.synthetic", **settings})


def dataset_records(splits, name: str, source: Any) -> list[dict[str, Any]]:
    """One record per split of `splits` (a data.Splits), as the recorder logs it and the
    records file keeps it: the fields of MLflow's Dataset entity, which MLflow's own
    `mlflow.log_input` sends (name, digest, source and its type, schema and profile as
    JSON), plus the split's `context`."""
    import mlflow.data
    from mlflow.entities import Dataset

    records = []
    for split, context in CONTEXTS.items():
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        dataset = mlflow.data.from_numpy(
            features=x, targets=y, source=source, name=f"{name}-{split}", digest=digest(x, y)
        )
        # Through the entity: its fields, no more, whatever a data set type adds to to_dict.
        entity = Dataset.from_dictionary(dataset.to_dict())
        records.append({**entity.to_dictionary(), "context": context})
    return records
