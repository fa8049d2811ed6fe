"""Fashion-MNIST end to end, from tiny IDX files the tests write themselves (no local copy).

The real entry checks the files against torchvision's md5s, which tiny files cannot match.
So the tests swap in an entry that differs only in the expected checksums (those of the tiny
files) and, for the download, in the URL (a loopback server); names, folder and decoder are
the real ones. A separate test shows that the real entry refuses the tiny files.
"""

import dataclasses
import gzip
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from test_datasets import local_http  # noqa: F401  (the loopback HTTP server fixture)

from dcbench.cli import main
from dcbench.datasets import DATASETS, load_dataset
from dcbench.datasets import base as datasets_base
from dcbench.datasets.catalog import FASHION_MD5, FASHION_URLS

N_TRAIN, N_TEST, N_CLASSES = 150, 60, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Own array cache (the decoded arrays are cached by checksum)."""
    monkeypatch.setenv("DCBENCH_CACHE_DIR", str(tmp_path / "cache"))


def _idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def tiny_fashion(seed=0) -> dict[str, bytes]:
    """The four Fashion-MNIST files for 150 + 60 images of 3 well separated 'garments' (a
    bright band at a class-specific height), labels 0..2; t10k labels are shifted by one
    class so that the order train-then-test is visible."""
    rng = np.random.default_rng(seed)
    files = {}
    for prefix, n, shift in (("train", N_TRAIN, 0), ("t10k", N_TEST, 1)):
        y = (np.arange(n) + shift) % N_CLASSES
        x = rng.integers(0, 40, size=(n, 28, 28))
        for k in range(N_CLASSES):
            x[y == k, 3 + 9 * k : 9 + 9 * k, 4:24] += 200
        files[f"{prefix}-images-idx3-ubyte.gz"] = _idx_gz(x)
        files[f"{prefix}-labels-idx1-ubyte.gz"] = _idx_gz(y)
    return files


def accept(files: dict[str, bytes], monkeypatch, base_url: str | None = None) -> None:
    """Expect the tiny files' own md5s (and download them from ``base_url``, if given)."""
    spec = DATASETS.get("fashion-mnist")
    swapped = tuple(
        dataclasses.replace(
            f,
            known_hash="md5:" + hashlib.md5(files[f.name]).hexdigest(),
            urls=(base_url + f.name,) if base_url else f.urls,
        )
        for f in spec.files
    )
    monkeypatch.setitem(
        DATASETS._entries, "fashion-mnist", dataclasses.replace(spec, files=swapped)
    )


def offline(monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(datasets_base.pooch, "retrieve", no_network)


def write(files: dict[str, bytes], folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


TINY = ["--set", "pretrain_epochs=2", "--set", "maxiter=16", "--set", "kmeans_n_init=2",
        "--set", "n_init=2", "--set", "dcn.update_interval=8"]  # fmt: skip


def test_the_real_entry_is_torchvisions_and_refuses_files_that_do_not_match(tmp_path, capsys):
    spec = DATASETS.get("fashion-mnist")
    assert {f.name: f.known_hash for f in spec.files} == {
        n: f"md5:{h}" for n, h in FASHION_MD5.items()
    }
    assert FASHION_MD5["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert all(
        f.subdir == "fashion-mnist" and f.urls[0].startswith(FASHION_URLS[0]) for f in spec.files
    )
    write(tiny_fashion(), tmp_path / "data" / "fashion-mnist")
    code = main(["--no-progress", "--no-figures", "--methods", "kmeans", "--datasets",
                 "fashion-mnist", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "checksum mismatch" in err and "expected md5:" in err
    assert err.strip().count("\n") == 0


def test_fashion_mnist_is_downloaded_verified_and_clustered(tmp_path, monkeypatch, local_http):  # noqa: F811
    root, base_url = local_http
    files = tiny_fashion()
    write(files, root)
    accept(files, monkeypatch, base_url)
    (tmp_path / "empty").mkdir()
    code = main(["--no-progress", "--no-figures", "--methods", "kmeans,dcn", "--datasets",
                 "fashion-mnist", "--seeds", "1", "--data-dir", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "out"), *TINY])  # fmt: skip
    assert code == 0
    downloaded = tmp_path / "cache" / "data" / "fashion-mnist"
    assert sorted(p.name for p in downloaded.iterdir()) == sorted(files)
    results = pd.read_csv(tmp_path / "out" / "results.csv").set_index("method")
    assert set(results["status"]) == {"ok"} and set(results["dataset"]) == {"fashion-mnist"}
    assert results["acc"].min() >= 0.95  # three well separated bands
    record = json.loads(
        (tmp_path / "out" / "records" / "dcn__fashion-mnist__seed0.json").read_text()
    )
    assert record["n_samples"] == N_TRAIN + N_TEST and record["config"]["n_clusters"] == N_CLASSES
    table = (tmp_path / "out" / "tables" / "table.md").read_text()
    assert "| method | fashion-mnist ACC |" in table and "| dcn |" in table


def test_fashion_mnist_from_a_data_dir_offline(tmp_path, monkeypatch):
    files = tiny_fashion(seed=1)
    write(files, tmp_path / "data" / "fashion-mnist")
    accept(files, monkeypatch)
    offline(monkeypatch)
    data = load_dataset("fashion-mnist", tmp_path / "data")
    assert data.x.shape == (N_TRAIN + N_TEST, 1, 28, 28) and data.x.dtype == np.float32
    assert data.x.max() <= 1.0 and data.x.max() > 0.9  # x / 255
    np.testing.assert_array_equal(data.y[:N_TRAIN], np.arange(N_TRAIN) % N_CLASSES)  # train first
    np.testing.assert_array_equal(data.y[N_TRAIN:], (np.arange(N_TEST) + 1) % N_CLASSES)
    code = main(["--no-progress", "--no-figures", "--methods", "depict", "--datasets",
                 "fashion-mnist", "--seeds", "1", "--data-dir", str(tmp_path / "data"),
                 "--out", str(tmp_path / "out"), *TINY[:6]])  # fmt: skip
    assert code == 0
    record = json.loads(
        (tmp_path / "out" / "records" / "depict__fashion-mnist__seed0.json").read_text()
    )
    assert record["status"] == "ok" and record["metrics"]["acc"] >= 0.95
