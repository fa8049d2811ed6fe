"""Fault injection: kill run_all.py with SIGKILL at random moments, resume, compare.

    python bench/faults.py [--runs 12] [--max-kills 3] [--methods ...] [--seeds 2]

One uninterrupted run of a small digits suite gives the reference records. Then each of
``--runs`` runs is started, killed (SIGKILL to its whole process group, workers included) at a
uniformly random moment one to ``--max-kills`` times, and finally run to completion with the
same command. Odd-numbered runs use ``--jobs 2`` (local worker processes), even ones the
in-process executor. Counted:

- kills: SIGKILLs that hit a live run (a run that had already finished is not counted);
- lost: records that were complete right after some kill but missing or changed at the end;
- corrupt: record files that failed their checksum right after a kill (atomic writes: expect 0);
- differing: final records whose status or metrics differ from the uninterrupted run's.

Writes bench/results/faults/faults.json and faults.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from dcbench.core import runinfo
from dcbench.core.fileio import atomic_write_text
from dcbench.runner.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "faults"


def command(out: Path, args: argparse.Namespace, jobs: int) -> list[str]:
    return [
        sys.executable, str(REPO / "run_all.py"),
        "--methods", args.methods, "--datasets", "digits", "--seeds", str(args.seeds),
        "--out", str(out), "--no-figures", "--jobs", str(jobs),
    ]  # fmt: skip


def snapshot(out: Path) -> dict[str, str]:
    """name -> checksum of every record that passes its checksum now."""
    store = ResultsStore(out)
    done = {}
    for path in sorted(store.records_dir.glob("*.json")) if store.records_dir.is_dir() else []:
        record = store.get(*_key(path))
        if record is not None:
            done[path.name] = json.loads(path.read_text())["checksum"]
    return done


def corrupt_files(out: Path) -> int:
    records = out / "records"
    if not records.is_dir():
        return 0
    return sum(ResultsStore(out).get(*_key(p)) is None for p in records.glob("*.json"))


def _key(path: Path) -> tuple[str, str, int]:
    method, dataset, seed = path.stem.split("__")
    return method.replace("+", ":"), dataset, int(seed.removeprefix("seed"))


def outcome(out: Path) -> dict[str, tuple]:
    return {
        f"{r['method']}/{r['seed']}": (r["status"], tuple(sorted(r.get("metrics", {}).items())))
        for r in ResultsStore(out).records()
    }


def run_once(cmd: list[str], log, kill_after: float | None) -> tuple[bool, int | None]:
    """Run cmd; SIGKILL its process group after kill_after seconds. (killed, exit code)."""
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=kill_after)
        return False, proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True, None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=12)
    p.add_argument("--max-kills", type=int, default=3)
    p.add_argument("--methods", default="kmeans,sae-kmeans,dec,cae-kmeans,dcec")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    args = p.parse_args()
    rng = random.Random(args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dcbench-faults-"))
    log = open(OUT / "log.txt", "w")  # noqa: SIM115  (one log for the whole benchmark)

    start = time.perf_counter()
    killed, code = run_once(command(tmp / "reference", args, 1), log, None)
    reference_s = time.perf_counter() - start
    assert code == 0, f"reference run failed (exit {code}); see {OUT / 'log.txt'}"
    reference = outcome(tmp / "reference")
    print(f"reference: {len(reference)} records in {reference_s:.1f} s")

    runs = []
    for i in range(args.runs):
        out, jobs = tmp / f"run{i}", 1 + i % 2
        kills, seen, corrupt = [], {}, 0
        for _ in range(rng.randint(1, args.max_kills)):
            at = rng.uniform(0.5, 0.9 * reference_s)
            was_killed, _ = run_once(command(out, args, jobs), log, at)
            if not was_killed:
                break
            done = snapshot(out)
            corrupt += corrupt_files(out)
            seen.update(done)
            kills.append({"after_s": round(at, 2), "records_done": len(done)})
        _, code = run_once(command(out, args, jobs), log, None)
        final = snapshot(out)
        lost = sorted(name for name, digest in seen.items() if final.get(name) != digest)
        result = outcome(out)
        differing = sorted(k for k in reference if result.get(k) != reference[k])
        runs.append({
            "run": i, "jobs": jobs, "kills": kills, "final_exit": code,
            "lost": lost, "corrupt_after_kill": corrupt, "differing": differing,
        })  # fmt: skip
        print(
            f"run {i} (jobs {jobs}): {len(kills)} kill(s) at "
            f"{[k['after_s'] for k in kills]} s, exit {code}, lost {len(lost)}, "
            f"corrupt {corrupt}, differing {len(differing)}"
        )
    log.close()

    total = {
        "runs": len(runs),
        "kills": sum(len(r["kills"]) for r in runs),
        "resumed_runs": sum(bool(r["kills"]) for r in runs),
        "records_lost": sum(len(r["lost"]) for r in runs),
        "corrupt_after_kill": sum(r["corrupt_after_kill"] for r in runs),
        "records_differing": sum(len(r["differing"]) for r in runs),
        "failed_final_runs": sum(r["final_exit"] != 0 for r in runs),
    }
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": runinfo.git_commit(),
        "machine": runinfo.machine(),
        "versions": runinfo.versions(),
        "command": " ".join(["run_all.py", *command(Path("OUT"), args, 1)[2:]]),
        "reference_records": len(reference),
        "reference_seconds": round(reference_s, 1),
        "totals": total,
        "runs": runs,
    }
    atomic_write_text(OUT / "faults.json", json.dumps(result, indent=1))
    lines = [
        "# Fault injection (`python bench/faults.py`)",
        "",
        f"{result['date']}, commit {result['git_commit']}, {result['machine']}",
        "",
        f"Suite: `{result['command']}` ({len(reference)} records, "
        f"{reference_s:.0f} s uninterrupted); odd runs with `--jobs 2`.",
        "",
        "| " + " | ".join(total) + " |",
        "|" + "---:|" * len(total),
        "| " + " | ".join(str(v) for v in total.values()) + " |",
        "",
    ]
    atomic_write_text(OUT / "faults.md", "\n".join(lines))
    print(json.dumps(total))


if __name__ == "__main__":
    main()
