"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file where a reader looks."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(f)`` on a temporary file in the same folder, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes 0600 files; give the mode an ordinary open() would (0666 less the
        # umask), so that a results folder shared with colleagues is readable by them
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


# -- checksummed files: a corrupt or truncated file is detected, never silently used ---------

_MAGIC = b"DCBENCH1"


def write_result(folder: str | os.PathLike, stem: str, result: dict, markdown: str) -> None:
    """A benchmark's measured result as ``stem.json`` beside its Markdown ``stem.md`` in
    ``folder`` (made if missing), each written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{stem}.json", json.dumps(result, indent=1))
    atomic_write_text(folder / f"{stem}.md", markdown)


def write_checked(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` atomically behind a header holding its SHA-256."""
    digest = hashlib.sha256(payload).digest()
    atomic_write(path, lambda f: f.write(_MAGIC + digest + payload))


def read_checked(path: str | os.PathLike) -> bytes | None:
    """The payload written by ``write_checked``; None if missing, truncated or corrupt."""
    try:
        blob = Path(path).read_bytes()
    except OSError:
        return None
    head = len(_MAGIC) + 32
    if (
        blob[: len(_MAGIC)] != _MAGIC
        or hashlib.sha256(blob[head:]).digest() != blob[len(_MAGIC) : head]
    ):
        return None
    return blob[head:]


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` with a checksum, written atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_checked(path, buffer.getvalue())


def load_torch(path: str | os.PathLike) -> Any:
    """What ``save_torch`` wrote, on the CPU; None if the file is missing or fails its checksum."""
    import torch

    payload = read_checked(path)
    if payload is None:
        return None
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
