"""The results store: one JSON record per (method, dataset, seed) run, plus a derived results.csv.

Records are written atomically (temp file in the same folder, then ``os.replace``), so a crash
or Ctrl-C never leaves a half-written record; results.csv is rebuilt from the records after
every write, so it is always up to date.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

from dcbench.fileio import atomic_write_text

CSV_COLUMNS = [
    "method", "dataset", "seed", "status",
    "acc", "nmi_geometric", "nmi_arithmetic", "ari",
    "seconds", "device",
]  # fmt: skip


class ResultsStore:
    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.records_dir = self.out_dir / "records"
        self.csv_path = self.out_dir / "results.csv"
        self._lock = FileLock(str(self.out_dir / ".store.lock"))

    def record_path(self, method: str, dataset: str, seed: int) -> Path:
        return self.records_dir / f"{method.replace(':', '+')}__{dataset}__seed{seed}.json"

    def get(self, method: str, dataset: str, seed: int) -> dict[str, Any] | None:
        return _read_record(self.record_path(method, dataset, seed))

    def put(self, record: dict[str, Any]) -> Path:
        path = self.record_path(record["method"], record["dataset"], record["seed"])
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=_jsonable))
            self._write_csv()
        return path

    def records(self) -> list[dict[str, Any]]:
        if not self.records_dir.is_dir():
            return []
        found = (_read_record(p) for p in sorted(self.records_dir.glob("*.json")))
        return [r for r in found if r is not None]

    def dataframe(self) -> pd.DataFrame:
        rows = [
            {
                **{k: r.get(k) for k in CSV_COLUMNS},
                **{k: r.get("metrics", {}).get(k) for k in CSV_COLUMNS[4:8]},
            }
            for r in self.records()
        ]
        return pd.DataFrame(rows, columns=CSV_COLUMNS)

    def _write_csv(self) -> None:
        atomic_write_text(self.csv_path, self.dataframe().to_csv(index=False))


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable or corrupt: treated as not done, so it is recomputed


def _jsonable(value: Any):
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)
