"""Pretrained autoencoders on disk, one per (backbone, dataset, seed, pretraining config).

Every method that shares a backbone reuses the same pretrained weights, in the same run or a
later one. Pretraining checkpoints after every epoch, so an interruption loses at most the
epoch in progress. Files are written atomically; an unreadable file is recomputed, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from dcbench.fileio import atomic_write


def save_atomically(obj: Any, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def load_or_none(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        return None
    except Exception:  # truncated or corrupt: recompute rather than use it
        return None


class FileCheckpoint:
    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, Any] | None:
        return load_or_none(self.path)

    def save(self, state: dict[str, Any]) -> None:
        save_atomically(state, self.path)


class PretrainCache:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._memory: dict[Path, dict[str, Any]] = {}

    def path_for(self, dataset: str, n_samples: int, config: dict[str, Any], seed: int) -> Path:
        key = json.dumps(
            {"dataset": dataset, "n": n_samples, "seed": seed, **config}, sort_keys=True
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return self.directory / f"{config['backbone']}__{dataset}__seed{seed}__{digest}.pt"

    def get_or_pretrain(
        self, estimator, x, dataset: str, seed: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pretrained state for this estimator's pretraining config, and facts for the record."""
        path = self.path_for(dataset, x.shape[0], estimator.pretrain_config(), seed)
        if path in self._memory:
            return self._memory[path], {"pretrain_reused": True, "pretrain_file": str(path)}
        state = load_or_none(path)
        reused = state is not None
        if not reused:
            started = time.perf_counter()
            checkpoint = FileCheckpoint(path.with_suffix(".ckpt"))
            state = estimator.pretrain(x, checkpoint=checkpoint)
            state["seconds"] = time.perf_counter() - started
            save_atomically(state, path)
            checkpoint.path.unlink(missing_ok=True)
        self._memory = {path: state}  # keep one: runs are ordered so that sharers sit together
        return state, {"pretrain_reused": reused, "pretrain_file": str(path)}
