"""The datasets of the paper (and a few more), registered by name.

Scaling follows PROTOCOL.md: MNIST-like images x/255, USPS already in [0, 1],
scikit-learn's digits x/16 (their values are 0..16).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import h5py
import numpy as np

from dcbench.datasets.base import DatasetSpec, RemoteFile, register_dataset

MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_MD5 = {  # torchvision's MNIST.resources
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_MD5 = {  # torchvision's FashionMNIST.resources
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# The widely used Kaggle "usps-dataset" HDF5 file (no published checksum; see shared/data/README.md).
USPS_H5 = RemoteFile(
    "usps.h5",
    "usps",
    "sha256:734f88c541104a956d88be2c95d03b4a463ffd74ccc2ba9c80841fb98e3fcb36",
    (
        "https://raw.githubusercontent.com/niuers/Learning-From-Data-A-Short-Course/"
        "879a698b960e5867f7c2b11f8938fa89c3d21839/data/usps.h5",
    ),
)


def read_idx(path: Path) -> np.ndarray:
    """Decode a (gzip-compressed) IDX file of unsigned bytes: images (N, H, W) or labels (N,)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:  # type code 0x08 = unsigned byte
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {magic:#010x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_files(prefixes: tuple[str, ...], md5: dict, subdir: str, urls: tuple[str, ...]):
    return tuple(
        RemoteFile(
            f"{p}-{kind}-idx{n}-ubyte.gz",
            subdir,
            "md5:" + md5[f"{p}-{kind}-idx{n}-ubyte.gz"],
            tuple(u + f"{p}-{kind}-idx{n}-ubyte.gz" for u in urls),
        )
        for p in prefixes
        for kind, n in (("images", 3), ("labels", 1))
    )


def _decode_idx(prefixes: tuple[str, ...]):
    def decode(paths: dict[str, Path]):
        x = np.concatenate([read_idx(paths[f"{p}-images-idx3-ubyte.gz"]) for p in prefixes])
        y = np.concatenate([read_idx(paths[f"{p}-labels-idx1-ubyte.gz"]) for p in prefixes])
        return (x.astype(np.float32) / 255.0)[:, None], y

    return decode


for _name, _prefixes, _desc in (
    ("mnist-full", ("train", "t10k"), "MNIST train+test, 70000 x 1x28x28, x/255"),
    ("mnist-test", ("t10k",), "MNIST test set, 10000 x 1x28x28, x/255"),
):
    register_dataset(
        DatasetSpec(
            _name,
            _desc,
            _idx_files(_prefixes, MNIST_MD5, "mnist", MNIST_URLS),
            _decode_idx(_prefixes),
        )
    )

register_dataset(
    DatasetSpec(
        "fashion-mnist",
        "Fashion-MNIST train+test, 70000 x 1x28x28, x/255 (downloaded; no local copy)",
        _idx_files(("train", "t10k"), FASHION_MD5, "fashion-mnist", FASHION_URLS),
        _decode_idx(("train", "t10k")),
    )
)


def _decode_usps(paths: dict[str, Path]):
    with h5py.File(paths["usps.h5"], "r") as f:
        x = np.concatenate([f["train/data"][:], f["test/data"][:]])
        y = np.concatenate([f["train/target"][:], f["test/target"][:]])
    return x.reshape(-1, 1, 16, 16), y


register_dataset(
    DatasetSpec("usps", "USPS train then test, 9298 x 1x16x16, in [0, 1]", (USPS_H5,), _decode_usps)
)


def _decode_digits(paths: dict[str, Path]):
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0)[:, None], digits.target


register_dataset(
    DatasetSpec(
        "digits",
        "scikit-learn's bundled 8x8 digits, 1797 x 1x8x8, x/16 (no download)",
        (),
        _decode_digits,
    )
)
