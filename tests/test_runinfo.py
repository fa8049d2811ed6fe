"""dcbench/core/runinfo.py: what a record says of the code that made it."""

import importlib.util
import shutil
from pathlib import Path

import pytest

from dcbench.core import runinfo


def load_copy(root: Path):
    """runinfo.py as installed outside any checkout (a copy without .git)."""
    path = root / "dcbench" / "core" / "runinfo.py"
    path.parent.mkdir(parents=True)
    shutil.copy(runinfo.__file__, path)
    spec = importlib.util.spec_from_file_location("runinfo_copy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_copy_without_history_says_the_stated_commit_as_stated(tmp_path, monkeypatch):
    monkeypatch.delenv("DCBENCH_GIT_COMMIT", raising=False)
    assert load_copy(tmp_path / "a").git_commit() == "unknown"
    monkeypatch.setenv("DCBENCH_GIT_COMMIT", "abc123")
    assert load_copy(tmp_path / "b").git_commit() == "abc123 (stated)"


@pytest.mark.skipif(
    not (Path(runinfo.__file__).resolve().parents[2] / ".git").exists(),
    reason="a copy of the files without git history (as sent to a GPU machine)",
)
def test_a_checkout_says_its_own_commit_whatever_is_stated(monkeypatch):
    monkeypatch.setenv("DCBENCH_GIT_COMMIT", "abc123")
    commit = runinfo.git_commit.__wrapped__()  # not the cached answer
    assert "stated" not in commit and commit != "unknown" and len(commit.split("-")[0]) == 40
