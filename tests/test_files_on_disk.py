"""What the suite writes to disk: readable by others under the umask, and a full disk ends a
run with one line while every finished record stays intact."""

import os
import stat
import subprocess

import pytest

from dcbench.cli import main
from dcbench.runner.store import ResultsStore


def run(*args):
    return main(["--no-progress", "--no-figures", "--methods", "kmeans", *args])


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_follow_the_umask_not_mkstemps_0600(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        assert run("--seeds", "1", "--out", str(tmp_path)) == 0, capsys.readouterr().err
    finally:
        os.umask(old)
    written = [tmp_path / "results.csv", tmp_path / "tables" / "table.md",
               tmp_path / "records" / "kmeans__digits__seed0.json",
               tmp_path / "models" / "kmeans__digits__seed0.pt"]  # fmt: skip
    assert {p.name: mode(p) for p in written} == {p.name: 0o644 for p in written}
    os.umask(0o077)
    try:
        assert run("--seeds", "2", "--out", str(tmp_path)) == 0
    finally:
        os.umask(old)
    assert mode(tmp_path / "records" / "kmeans__digits__seed1.json") == 0o600


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and mount; skipped elsewhere)."""
    where = tmp_path / "small"
    where.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                       check=True, capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield where
    subprocess.run(["umount", str(where)], check=False)


def test_a_full_disk_ends_with_one_line_and_a_rerun_resumes(small_disk, capsys):
    out = str(small_disk / "out")
    code = run("--seeds", "12", "--out", out)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and "Traceback" not in err
    assert lines[-1].startswith("run_all.py: error: no space left on the device of")
    kept = {p.name: p.read_bytes() for p in (small_disk / "out" / "records").glob("*.json")}
    assert 0 < len(kept) < 12 and len(ResultsStore(out).records()) == len(kept)  # all intact
    assert not list((small_disk / "out").rglob("*.tmp"))  # no half-written leftovers

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    assert run("--seeds", "12", "--out", out) == 0
    records = {p.name: p.read_bytes() for p in (small_disk / "out" / "records").glob("*.json")}
    assert len(records) == 12
    assert all(records[name] == body for name, body in kept.items())  # nothing redone or lost
    assert f"{len(kept)} already done" in capsys.readouterr().err
