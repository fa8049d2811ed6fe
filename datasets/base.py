"""Dataset objects, the datasets registry, and checksum-verified file fetching (via pooch)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pooch

from dcbench.core.errors import DataError
from dcbench.core.fileio import atomic_write
from dcbench.core.registry import Registry

DATASETS = Registry("dataset")

CACHE_ENV = "DCBENCH_CACHE_DIR"
DATA_ENV = "DCBENCH_DATA_DIR"
ARRAY_CACHE_VERSION = "1"  # bump when a decoder or scaling changes


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or pooch.os_cache("dcbench"))


def default_data_dir() -> Path:
    """``$DCBENCH_DATA_DIR`` if set, else ``<cache>/data`` (where downloads go)."""
    return Path(os.environ.get(DATA_ENV) or default_cache_dir() / "data")


@dataclass(frozen=True)
class ImageDataset:
    """Images as float32 (N, C, H, W), scaled as the protocol says, and int64 labels (N,)."""

    name: str
    x: np.ndarray
    y: np.ndarray

    @property
    def n_samples(self) -> int:
        return self.x.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])

    @property
    def n_classes(self) -> int:
        return int(np.unique(self.y).size)


@dataclass(frozen=True)
class RemoteFile:
    """One source file: where it may be found locally, its checksum, and where to download it."""

    name: str
    subdir: str
    known_hash: str  # "md5:..." or "sha256:..."
    urls: tuple[str, ...]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    files: tuple[RemoteFile, ...]
    decode: Callable[[dict[str, Path]], tuple[np.ndarray, np.ndarray]]


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name, spec, description=spec.description)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> ImageDataset:
    """Load a registered dataset by name.

    Source files are looked up in ``data_dir`` (flat or in the dataset's sub-folder, as in
    ``shared/data``), then in the download cache, then downloaded (checksum-verified) if
    ``download``. Decoded arrays are cached, so later loads skip decoding and checksums.
    """
    spec: DatasetSpec = DATASETS.get(name)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    key = hashlib.sha256(
        "|".join([ARRAY_CACHE_VERSION, spec.name, *(f.known_hash for f in spec.files)]).encode()
    ).hexdigest()[:16]
    array_path = cache_dir / "arrays" / f"{spec.name}-{key}.npz"
    if array_path.exists():
        try:
            with np.load(array_path) as arrays:
                return ImageDataset(spec.name, arrays["x"], arrays["y"])
        except (OSError, ValueError, KeyError):
            array_path.unlink(missing_ok=True)  # corrupt cache: rebuild it below
    paths = {f.name: fetch_file(f, data_dir, cache_dir, download=download) for f in spec.files}
    x, y = spec.decode(paths)
    x, y = np.ascontiguousarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
    _save_arrays_atomically(array_path, x=x, y=y)
    return ImageDataset(spec.name, x, y)


def fetch_file(file: RemoteFile, data_dir: Path, cache_dir: Path, *, download: bool = True) -> Path:
    """Path to a verified copy of ``file``; raises DataError with what to do if there is none."""
    download_dir = cache_dir / "data" / file.subdir
    for candidate in (data_dir / file.subdir / file.name, data_dir / file.name):
        if candidate.is_file():
            _verify(candidate, file)
            return candidate
    where = data_dir / file.subdir / file.name
    if not download:
        raise DataError(
            f"{file.name} not found in {data_dir} (expected {file.known_hash}); "
            f"put it at {where} or allow downloading"
        )
    errors = []
    for url in file.urls:
        try:
            # pooch downloads to a temporary file and moves it into place only after the
            # checksum matches, so an interrupted or corrupt download leaves nothing behind.
            return Path(
                pooch.retrieve(
                    url, file.known_hash, fname=file.name, path=download_dir, progressbar=False
                )
            )
        except Exception as exc:  # network errors, HTTP errors, checksum mismatch
            errors.append(f"{url}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    raise DataError(
        f"{file.name} not found in {data_dir} and its download failed ({'; '.join(errors)}); "
        f"put the file ({file.known_hash}) at {where} or pass --data-dir"
    )


def _verify(path: Path, file: RemoteFile) -> None:
    alg, expected = file.known_hash.split(":", 1)
    actual = pooch.file_hash(str(path), alg=alg)
    if actual != expected:
        raise DataError(
            f"checksum mismatch for {path}: expected {alg}:{expected}, got {alg}:{actual}; "
            f"replace it with the original {file.name}"
        )


def _save_arrays_atomically(path: Path, **arrays: np.ndarray) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))
