import gzip
import hashlib

import numpy as np
import pytest

from dcbench.core.errors import DataError
from dcbench.datasets import DATASETS, DatasetSpec, RemoteFile, load_dataset
from dcbench.datasets import base as datasets_base
from dcbench.datasets.catalog import read_idx


def test_registry_has_the_protocol_datasets():
    assert {"digits", "mnist-full", "mnist-test", "usps", "fashion-mnist"} <= set(DATASETS.names())


def test_digits_is_embedded_and_scaled():
    d = load_dataset("digits")
    assert d.x.shape == (1797, 1, 8, 8) and d.x.dtype == np.float32
    assert d.x.min() == 0.0 and d.x.max() == 1.0
    assert d.y.dtype == np.int64 and d.n_classes == 10


@pytest.mark.parametrize(
    "name, n, shape, first_labels",
    [
        ("usps", 9298, (1, 16, 16), [6, 5, 4, 7, 3]),
        ("mnist-test", 10000, (1, 28, 28), [7, 2, 1, 0, 4]),
    ],
)
def test_paper_datasets_from_shared_data(shared_data, name, n, shape, first_labels):
    d = load_dataset(name, shared_data)
    assert d.x.shape == (n, *shape) and d.x.dtype == np.float32
    assert 0.0 <= d.x.min() and d.x.max() == pytest.approx(1.0)
    assert list(d.y[:5]) == first_labels and np.bincount(d.y).size == 10


def test_usps_keeps_train_rows_before_test_rows(shared_data):
    y = load_dataset("usps", shared_data).y
    assert list(np.bincount(y[7291:])) == [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_round_trip(tmp_path):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), images)


@pytest.fixture
def tiny_spec(tmp_path):
    """A registered dataset backed by one tiny IDX file in a tmp data dir."""
    data_dir = tmp_path / "data"
    (data_dir / "tiny").mkdir(parents=True)
    _write_idx(data_dir / "tiny" / "tiny.gz", np.arange(4 * 2 * 2).reshape(4, 2, 2))
    md5 = hashlib.md5((data_dir / "tiny" / "tiny.gz").read_bytes()).hexdigest()
    calls = []

    def decode(paths):
        calls.append(1)
        x = read_idx(paths["tiny.gz"])
        return x[:, None] / 255.0, np.arange(4) % 2

    spec = DatasetSpec(
        "tiny-test",
        "tiny",
        (RemoteFile("tiny.gz", "tiny", f"md5:{md5}", ("http://127.0.0.1:9/tiny.gz",)),),
        decode,
    )
    DATASETS._entries["tiny-test"], DATASETS._descriptions["tiny-test"] = spec, "tiny"
    yield data_dir, calls
    del DATASETS._entries["tiny-test"], DATASETS._descriptions["tiny-test"]


def test_decoded_arrays_are_cached(tiny_spec, tmp_path):
    data_dir, calls = tiny_spec
    first = load_dataset("tiny-test", data_dir, cache_dir=tmp_path / "cache")
    second = load_dataset("tiny-test", data_dir, cache_dir=tmp_path / "cache")
    assert len(calls) == 1
    np.testing.assert_array_equal(first.x, second.x)
    assert first.x.shape == (4, 1, 2, 2)


def test_checksum_mismatch_names_file_and_expected_hash(tiny_spec, tmp_path):
    data_dir, _ = tiny_spec
    (data_dir / "tiny" / "tiny.gz").write_bytes(b"corrupted")
    with pytest.raises(
        DataError, match=r"checksum mismatch for .*tiny.gz: expected md5:[0-9a-f]{32}"
    ):
        load_dataset("tiny-test", data_dir, cache_dir=tmp_path / "cache")


def test_missing_file_offline_says_what_and_where_and_leaves_nothing(
    tiny_spec, tmp_path, monkeypatch
):
    data_dir, _ = tiny_spec
    (data_dir / "tiny" / "tiny.gz").unlink()

    def offline(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(datasets_base.pooch, "retrieve", offline)
    with pytest.raises(DataError) as info:
        load_dataset("tiny-test", data_dir, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert (
        "tiny.gz" in message and "md5:" in message and str(data_dir / "tiny" / "tiny.gz") in message
    )
    assert "\n" not in message
    leftovers = list((tmp_path / "cache").rglob("*")) if (tmp_path / "cache").exists() else []
    assert not [p for p in leftovers if p.is_file()]


@pytest.fixture
def local_http(tmp_path):
    """A throwaway HTTP server on 127.0.0.1 serving tmp_path/served."""
    import functools
    import http.server
    import threading

    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _point_tiny_at(url, monkeypatch):
    spec = DATASETS.get("tiny-test")
    file = spec.files[0]
    moved = DatasetSpec(
        spec.name,
        spec.description,
        (RemoteFile(file.name, file.subdir, file.known_hash, (url,)),),
        spec.decode,
    )
    monkeypatch.setitem(DATASETS._entries, "tiny-test", moved)


def test_download_is_checksum_verified_and_a_bad_one_leaves_no_file(
    tiny_spec, tmp_path, local_http, monkeypatch
):
    data_dir, _ = tiny_spec
    root, base_url = local_http
    good = (data_dir / "tiny" / "tiny.gz").read_bytes()
    (data_dir / "tiny" / "tiny.gz").unlink()
    _point_tiny_at(base_url + "tiny.gz", monkeypatch)
    target = tmp_path / "cache" / "data" / "tiny" / "tiny.gz"

    (root / "tiny.gz").write_bytes(b"not the file")
    with pytest.raises(DataError, match="tiny.gz.*download failed.*hash"):
        load_dataset("tiny-test", data_dir, cache_dir=tmp_path / "cache")
    assert not [p for p in target.parent.glob("*") if p.is_file()]

    (root / "tiny.gz").write_bytes(good)
    d = load_dataset("tiny-test", data_dir, cache_dir=tmp_path / "cache")
    assert d.n_samples == 4 and target.read_bytes() == good


def test_unknown_dataset_lists_the_allowed_names():
    with pytest.raises(ValueError, match="unknown dataset 'nope'; choose from: .*usps"):
        load_dataset("nope")
