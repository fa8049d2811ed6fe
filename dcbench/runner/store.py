"""The results store: one JSON record per (method, dataset, seed) run, plus a derived results.csv.

Records are written atomically (temp file in the same folder, then ``os.replace``), so a crash
or Ctrl-C never leaves a half-written record, and each carries the SHA-256 of its content: a
record that fails it (edited, truncated, bit rot) is reported and redone, never used.
results.csv is rebuilt from the records after every write, so it is always up to date.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from dcbench.core.errors import UsageError
from dcbench.core.fileio import atomic_write_text

CSV_COLUMNS = [
    "method", "dataset", "seed", "protocol", "status",
    "acc", "nmi_geometric", "nmi_arithmetic", "ari",
    "seconds", "pretrain_seconds", "device",
]  # fmt: skip


def safe_name(method: str) -> str:
    """A method name as it appears in file names (``sae:kl+rec`` -> ``sae+kl+rec``)."""
    return method.replace(":", "+")


class ResultsStore:
    """A results folder. It owns every path in it:

    records/ (one JSON per run), results.csv, report.md, tables/, figures/, models/ (fitted
    weights per run), pretrained/ (shared pretrained autoencoders and checkpoints), logs/.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.records_dir = self.out_dir / "records"
        self.csv_path = self.out_dir / "results.csv"
        self.report_path = self.out_dir / "report.md"
        self.tables_dir = self.out_dir / "tables"
        self.table_path = self.tables_dir / "table.md"
        self.figures_dir = self.out_dir / "figures"
        self.models_dir = self.out_dir / "models"
        self.pretrained_dir = self.out_dir / "pretrained"
        self.logs_dir = self.out_dir / "logs"
        self._lock = FileLock(str(self.out_dir / ".store.lock"))

    def run_name(self, method: str, dataset: str, seed: int) -> str:
        """The stem every file of one run shares (record, model, checkpoint)."""
        return f"{safe_name(method)}__{dataset}__seed{seed}"

    def model_path(self, method: str, dataset: str, seed: int) -> Path:
        return self.models_dir / f"{self.run_name(method, dataset, seed)}.pt"

    @contextlib.contextmanager
    def exclusive(self):
        """Hold the folder for one run_all process; a second one gets a one-line error. The
        lock dies with its process, so a killed run never leaves the folder locked."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.out_dir / ".run.lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise UsageError(
                f"{self.out_dir} is in use by another run_all process; wait for it to finish "
                "or pass another --out"
            ) from None
        try:
            yield self
        finally:
            lock.release()

    def record_path(self, method: str, dataset: str, seed: int) -> Path:
        return self.records_dir / f"{self.run_name(method, dataset, seed)}.json"

    def get(self, method: str, dataset: str, seed: int) -> dict[str, Any] | None:
        return _read_record(self.record_path(method, dataset, seed))

    def put(self, record: dict[str, Any]) -> Path:
        path = self.record_path(record["method"], record["dataset"], record["seed"])
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            atomic_write_text(path, dumps_with_checksum(record))
            self._write_csv()
        return path

    def records(self) -> list[dict[str, Any]]:
        if not self.records_dir.is_dir():
            return []
        found = (_read_record(p) for p in sorted(self.records_dir.glob("*.json")))
        return [r for r in found if r is not None]

    def dataframe(self) -> pd.DataFrame:
        from dcbench.runner.plan import protocol_of  # records from before protocols had names

        metrics = ["acc", "nmi_geometric", "nmi_arithmetic", "ari"]
        rows = [
            {
                **{k: r.get(k) for k in CSV_COLUMNS},
                **{k: r.get("metrics", {}).get(k) for k in metrics},
                "protocol": protocol_of(r),
            }
            for r in self.records()
        ]
        return pd.DataFrame(rows, columns=CSV_COLUMNS)

    def _write_csv(self) -> None:
        atomic_write_text(self.csv_path, self.dataframe().to_csv(index=False))


def dumps_with_checksum(record: dict[str, Any]) -> str:
    """The record as JSON with a ``checksum`` field: SHA-256 of its canonical JSON form."""
    body = json.loads(json.dumps(record, sort_keys=True, default=_jsonable))
    body.pop("checksum", None)
    return json.dumps({**body, "checksum": _digest(body)}, indent=1, sort_keys=True)


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``; None if missing, or if unreadable or failing its checksum
    (then it is treated as not done, so it is recomputed)."""
    try:
        record = json.loads(path.read_text())
        checksum = record.pop("checksum")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        checksum, record = None, None
    if record is None or checksum != _digest(record):
        warnings.warn(
            f"{path}: corrupt record (checksum mismatch); it will be redone", stacklevel=3
        )
        return None
    return record


def _jsonable(value: Any):
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)
