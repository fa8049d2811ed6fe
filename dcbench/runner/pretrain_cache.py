"""Pretrained autoencoders on disk, one per (backbone, dataset, seed, pretraining config), and
the spectral methods' seed-independent embeddings (``*.embedding.pt``).

Every method that shares a backbone reuses the same pretrained weights, in the same run or a
later one. Pretraining checkpoints after an epoch at most once a minute (and after its last
epoch), so an interruption loses at most about a minute; the clustering phases of DEC / IDEC / DCEC and DEPICT checkpoint here too
(``*.fit.ckpt``, at most once a minute), and a finished run of a unit waits here
(``*.finished.ckpt``) until the driver has stored it. Files carry a checksum and are written atomically: a
corrupt or truncated file is recomputed, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from dcbench.core.fileio import load_torch, save_torch

# Parameters added after caches existed, at the value every earlier run had implicitly: left
# out of the digest at that value, so that earlier pretrained files and checkpoints stay valid.
IMPLICIT_BEFORE = {"input_scale": 1.0, "device": "cpu"}


def _digest(payload: dict[str, Any]) -> str:
    payload = {k: v for k, v in payload.items() if IMPLICIT_BEFORE.get(k, object()) != v}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def pretrain_key(dataset: str, n_samples: int, seed: int, config: dict[str, Any]) -> str:
    """File stem naming one pretrained autoencoder: backbone, dataset, seed and a config digest."""
    digest = _digest({"dataset": dataset, "n": n_samples, "seed": seed, **config})
    return f"{config['backbone']}__{dataset}__seed{seed}__{digest}"


def embedding_key(method: str, dataset: str, n_samples: int, config: dict[str, Any]) -> str:
    """File stem naming a spectral method's embedding: its config but the seed (only its
    k-means reads the seed)."""
    digest = _digest({"n": n_samples, **{k: v for k, v in config.items() if k != "random_state"}})
    return f"{method}__{dataset}__{digest}"


# The checkpoints' file suffixes (the methods below name files with them) and their kinds,
# the longest first: ".ckpt" ends the other two as well
FINISHED, PHASE, PRETRAINING = ".finished.ckpt", ".fit.ckpt", ".ckpt"
CHECKPOINT_KINDS = {FINISHED: "finished run", PHASE: "clustering phase",
                    PRETRAINING: "pretraining"}  # fmt: skip


def describe_checkpoint(path: str | os.PathLike) -> tuple[str, str]:
    """A checkpoint file's kind (a value of ``CHECKPOINT_KINDS``) and whose it is: the file
    name up to its digest (``cae__mnist-full__seed0``, ``dcec__usps__seed1``)."""
    name = Path(path).name
    suffix = next((s for s in CHECKPOINT_KINDS if name.endswith(s)), None)
    if suffix is None:
        raise ValueError(f"{name}: not a checkpoint (allowed: *{', *'.join(CHECKPOINT_KINDS)})")
    return CHECKPOINT_KINDS[suffix], name[: -len(suffix)].rsplit("__", 1)[0]


def adopt_finished(
    source: str | os.PathLike, target: str | os.PathLike, pattern: str = "*.pt"
) -> None:
    """Copy another cache folder's finished files (weights and embeddings, ``*.pt``; never a
    checkpoint) into ``target`` for its runs to reuse; a file already there is kept."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for finished in Path(source).glob(pattern):
        if not (target / finished.name).exists():
            shutil.copy(finished, target / finished.name)


class FileCheckpoint:
    """Progress of a pretraining (after each epoch) or of a clustering phase. It also keeps the
    wall time spent up to each save, so that a resumed job's timing counts its earlier attempts
    (``earlier_seconds``: up to the last save of those, the time since it is lost with them)."""

    _WALL = "_checkpoint_wall_seconds"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.started = time.perf_counter()
        self.earlier_seconds = 0.0

    def load(self) -> dict[str, Any] | None:
        state = load_torch(self.path)
        if state is not None:
            self.earlier_seconds = float(state.pop(self._WALL, 0.0))
        return state

    def save(self, state: dict[str, Any]) -> None:
        wall = self.earlier_seconds + time.perf_counter() - self.started
        save_torch({**state, self._WALL: wall}, self.path)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class PretrainCache:
    """The folder of finished pretrained states (``KEY.pt``), their checkpoints (``KEY.ckpt``)
    and the runs' (``*.fit.ckpt``, ``*.finished.ckpt``)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.pt"

    def load(self, key: str) -> dict[str, Any] | None:
        return load_torch(self.path(key))

    def save(self, key: str, state: dict[str, Any]) -> Path:
        save_torch(state, self.path(key))
        return self.path(key)

    def pretrain(self, estimator, x, key: str) -> dict[str, Any]:
        """Pretrain (resuming from ``KEY.ckpt`` if an earlier attempt was interrupted). The
        state's ``seconds`` is the whole cost: this call plus the earlier attempts."""
        started = time.perf_counter()
        checkpoint = self.pretrain_checkpoint(key)
        state = estimator.pretrain(x, checkpoint=checkpoint)
        state["seconds"] = time.perf_counter() - started + checkpoint.earlier_seconds
        return state

    def fit_checkpoint(self, name: str, config: dict[str, Any], n_samples: int) -> FileCheckpoint:
        """Where one run's clustering phase saves its progress (``NAME__DIGEST.fit.ckpt``)."""
        return FileCheckpoint(self._run_stem(name, config, n_samples) + PHASE)

    def finished_run(self, name: str, config: dict[str, Any], n_samples: int) -> Path:
        """Where one run's record and fitted state wait from when it finished until the driver
        has stored them (``NAME__DIGEST.finished.ckpt``): a unit interrupted in a later run (a
        session stopped during DCEC, after DEC-conv) does not fit this one again."""
        return Path(self._run_stem(name, config, n_samples) + FINISHED)

    def _run_stem(self, name: str, config: dict[str, Any], n_samples: int) -> str:
        return str(self.directory / f"{name}__{_digest({'n': n_samples, **config})}")

    def load_embedding(self, key: str) -> dict[str, Any] | None:
        return load_torch(self.directory / f"{key}.embedding.pt")

    def save_embedding(self, key: str, state: dict[str, Any]) -> None:
        save_torch(state, self.directory / f"{key}.embedding.pt")

    def pretrain_checkpoint(self, key: str) -> FileCheckpoint:
        return FileCheckpoint(self.directory / f"{key}{PRETRAINING}")
