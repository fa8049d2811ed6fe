"""Datasets by name: ``load_dataset("usps", data_dir=...)``; ``DATASETS.names()`` lists them."""

from dcbench.datasets import catalog as _catalog  # noqa: F401  (registers the entries)
from dcbench.datasets.base import (
    DATASETS,
    DatasetSpec,
    ImageDataset,
    RemoteFile,
    default_cache_dir,
    default_data_dir,
    load_dataset,
    register_dataset,
)

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "ImageDataset",
    "RemoteFile",
    "default_cache_dir",
    "default_data_dir",
    "load_dataset",
    "register_dataset",
]
