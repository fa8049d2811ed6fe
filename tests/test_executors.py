"""Executors and faults: local processes and Ray give the in-process results; dead workers,
corrupt files, NaN losses, a second run_all and kill -9 are all survived."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blobs

from dcbench.cli import main
from dcbench.core.fileio import load_torch, save_torch
from dcbench.datasets import ImageDataset
from dcbench.methods import METHODS
from dcbench.runner.backends import InProcess, LocalProcesses, _Backend
from dcbench.runner.executor import execute
from dcbench.runner.plan import make_plan
from dcbench.runner.pretrain_cache import FileCheckpoint
from dcbench.runner.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "pretrain_epochs": 3,
    "maxiter": 30,
    "update_interval": 10,
    "kmeans_n_init": 2,
    "batch_size": 32,
    "pretrain_batch_size": 32,
    "n_init": 2,
}


@pytest.fixture(scope="module")
def data():
    x, y = blobs(n_per_cluster=20, n_clusters=3, shape=(1, 8, 8))
    return {"tiny": ImageDataset("tiny", x, y)}


def plan(methods, seeds=(0, 1), **extra):
    overrides = {}
    for m in methods:
        allowed = METHODS.get(m).allowed_params()
        overrides[m] = {k: v for k, v in {**TINY, **extra}.items() if k in allowed}
    return make_plan(methods, ["tiny"], list(seeds), overrides, {"tiny": 3})


def outcome(records):
    """What must not depend on where a run executed: status, metrics and the labels."""
    return {
        (r["method"], r["seed"]): (
            r["status"],
            r["metrics"],
            load_torch(r["model_file"])["labels"].tolist(),
        )
        for r in records
    }


METHODS_UNDER_TEST = ["kmeans", "cae-kmeans", "dcec", "dec"]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("inprocess")
    records = execute(plan(METHODS_UNDER_TEST), data, ResultsStore(out), progress=False)
    assert {r["status"] for r in records} == {"ok"}
    return outcome(records)


def test_local_processes_give_the_in_process_results(data, reference, tmp_path):
    backend = LocalProcesses(data, "cpu", jobs=2)
    records = execute(
        plan(METHODS_UNDER_TEST), data, ResultsStore(tmp_path), progress=False, backend=backend
    )
    assert backend.threads == 1 and outcome(records) == reference
    assert {r["threads"] for r in records if r["method"] != "kmeans"} == {1}


def test_in_process_runs_use_the_asked_threads_and_restore_the_callers(data, tmp_path):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        records = execute(plan(["cae-kmeans"], seeds=(0,)), data, ResultsStore(tmp_path),
                          progress=False, backend=InProcess(data, "cpu", threads=1))  # fmt: skip
        assert records[0]["threads"] == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_ray_executor_gives_the_in_process_results(data, reference, tmp_path):
    ray = pytest.importorskip("ray")
    from dcbench.runner.backends import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        backend = RayExecutor(data, "cpu")
        records = execute(
            plan(METHODS_UNDER_TEST), data, ResultsStore(tmp_path), progress=False, backend=backend
        )
        assert outcome(records) == reference
        # the pretrained states came back through the object store and were cached by the driver
        assert len(list((tmp_path / "pretrained").glob("*.pt"))) == 4
        assert not list((tmp_path / "pretrained").glob("*.ckpt"))

        @ray.remote(max_retries=0)
        def crash(*args):
            os._exit(1)

        backend._task = crash  # a worker that dies: recorded as failed, the driver goes on
        (record,) = execute(plan(["kmeans"], seeds=(5,)), data, ResultsStore(tmp_path),
                            progress=False, backend=backend)  # fmt: skip
        assert record["status"] == "failed" and "worker failed" in record["error"]

        # CUDA runs ask for a share of a GPU each, so that units share one device
        ray.shutdown()
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)  # fmt: skip
        assert RayExecutor(data, "cuda", gpus_per_run=0.25).slots == 4
        assert RayExecutor(data, "cuda").slots == 1 and RayExecutor(data, "cpu").slots == 2
    finally:
        ray.shutdown()


def test_a_gpu_share_outside_0_1_is_refused_in_one_line():
    from dcbench.core.errors import UsageError
    from dcbench.runner.backends import RayExecutor

    with pytest.raises(
        UsageError, match=r"--gpus-per-run 1.5 is not allowed; give a share in \(0, 1\]"
    ):
        RayExecutor({}, "cuda", gpus_per_run=1.5)


class _DeadWorker(_Backend):
    """A backend whose first unit's worker dies."""

    def __init__(self, data):
        self.inner, self.calls, self.recovered = InProcess(data, "cpu"), 0, 0

    def submit(self, unit, cache):
        self.calls += 1
        if self.calls == 1:
            future = Future()
            future.set_exception(RuntimeError("worker process died"))
            return future
        return self.inner.submit(unit, cache)

    def recover(self):
        self.recovered += 1


def test_a_dead_worker_is_recorded_as_failed_and_the_others_go_on(data, tmp_path):
    backend = _DeadWorker(data)
    records = execute(
        plan(["kmeans"]), data, ResultsStore(tmp_path), progress=False, backend=backend
    )
    assert [r["status"] for r in records] == ["failed", "ok"] and backend.recovered == 1
    assert records[0]["error"] == "worker failed: RuntimeError: worker process died"


def test_local_processes_survive_a_killed_worker(data, tmp_path):
    backend = LocalProcesses(data, "cpu", jobs=1)
    slow = plan(["cae-kmeans"], seeds=(0,), pretrain_epochs=100_000)  # would run for hours
    killer = threading.Thread(target=_kill_workers_of, args=(backend,), daemon=True)
    killer.start()
    records = execute(slow + plan(["kmeans"], seeds=(0,)), data, ResultsStore(tmp_path),
                      progress=False, backend=backend)  # fmt: skip
    assert [r["status"] for r in records] == ["failed", "ok"]
    assert "BrokenProcessPool" in records[0]["error"]


def _kill_workers_of(backend, after=3.0):
    deadline = time.time() + 60
    while time.time() < deadline and not backend._pool._processes:
        time.sleep(0.1)
    time.sleep(after)
    for pid in list(backend._pool._processes):
        os.kill(pid, signal.SIGKILL)


def test_a_nan_loss_fails_that_run_with_its_reason_and_the_others_go_on(data, tmp_path):
    runs = plan(["cae-kmeans"], seeds=(0,), pretrain_lr=1e12) + plan(["kmeans"], seeds=(0,))
    records = execute(runs, data, ResultsStore(tmp_path), progress=False)
    assert [r["status"] for r in records] == ["failed", "ok"]
    assert records[0]["error"].startswith("TrainingDiverged: loss diverged at pretraining epoch")
    assert "pretrain_lr" in records[0]["error"]
    assert not list((tmp_path / "pretrained").glob("*.pt"))  # a diverged state is never cached


def test_a_corrupt_record_is_detected_and_redone(data, tmp_path):
    store = ResultsStore(tmp_path)
    execute(plan(["kmeans"], seeds=(0,)), data, store, progress=False)
    path = store.record_path("kmeans", "tiny", 0)
    record = json.loads(path.read_text())
    record["metrics"]["acc"] = 0.123  # valid JSON, wrong content: only the checksum can tell
    path.write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="checksum"):
        assert store.get("kmeans", "tiny", 0) is None
    path.write_text(path.read_text()[:50])  # truncated
    with pytest.warns(UserWarning, match="checksum"):
        assert store.get("kmeans", "tiny", 0) is None


def test_a_bit_flip_in_a_cached_model_is_detected(data, tmp_path):
    execute(plan(["cae-kmeans"], seeds=(0,)), data, ResultsStore(tmp_path), progress=False)
    (cached,) = (tmp_path / "pretrained").glob("*.pt")
    blob = bytearray(cached.read_bytes())
    blob[-100] ^= 0x01  # inside the weights: torch.load alone would not notice
    cached.write_bytes(bytes(blob))
    assert load_torch(cached) is None
    (record,) = execute(plan(["dcec"], seeds=(0,)), data, ResultsStore(tmp_path), progress=False)
    assert record["status"] == "ok" and record["pretrain_reused"] is False


def test_a_second_run_all_on_the_same_folder_is_refused(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    with store.exclusive():
        code = main(
            ["--methods", "kmeans", "--seeds", "1", "--out", str(tmp_path), "--no-progress"]
        )
    err = capsys.readouterr().err
    assert code == 2 and "in use by another run_all process" in err and len(err.splitlines()) == 1
    with store.exclusive():  # released: usable again
        pass


def test_kill_9_then_rerun_completes_with_the_uninterrupted_results(tmp_path):
    args = [sys.executable, str(REPO / "run_all.py"), "--methods", "kmeans,cae-kmeans,dcec",
            "--seeds", "2", "--no-figures", "--no-progress",
            "--set", "pretrain_epochs=15", "--set", "maxiter=60", "--set", "n_init=3"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [*args, "--out", str(tmp_path / "ref")], env=env, check=True, capture_output=True
    )
    victim = subprocess.Popen([*args, "--out", str(tmp_path / "run")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    records = tmp_path / "run" / "records"
    while victim.poll() is None and len(list(records.glob("*.json"))) < 2:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)  # after a record or two, mid-pretraining or mid-fit
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    rerun = subprocess.run(
        [*args, "--out", str(tmp_path / "run")], env=env, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "already done" in rerun.stderr and not rerun.stderr.count("0 already done")
    got, want = ResultsStore(tmp_path / "run").records(), ResultsStore(tmp_path / "ref").records()
    assert len(got) == len(want) == 6
    for a, b in zip(got, want, strict=True):
        assert (a["method"], a["seed"], a["metrics"]) == (b["method"], b["seed"], b["metrics"])
        labels = [load_torch(r["model_file"])["labels"] for r in (a, b)]
        np.testing.assert_array_equal(*labels)


def test_without_a_progress_bar_each_finished_run_prints_one_line(data, tmp_path, capsys):
    execute(plan(["kmeans"], seeds=(0, 1)), data, ResultsStore(tmp_path), progress=False)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "[1/2] kmeans / tiny / seed 0: ACC" in lines[0]
    assert "[2/2] kmeans / tiny / seed 1: ACC" in lines[1]


def test_a_finished_run_leaves_no_clustering_checkpoint(data, tmp_path, monkeypatch):
    from dcbench.methods import training

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # save at every update
    saved, save = [], FileCheckpoint.save

    def recorded_save(self, state):
        saved.append(self.path)
        save(self, state)

    monkeypatch.setattr(FileCheckpoint, "save", recorded_save)
    records = execute(plan(["dcec"], seeds=(0,)), data, ResultsStore(tmp_path), progress=False)
    assert records[0]["status"] == "ok"
    phase_files = {p for p in saved if p.name.endswith(".fit.ckpt")}
    assert phase_files  # the phase did checkpoint, in the output's pretrained/ folder
    assert all(p.parent == tmp_path / "pretrained" and not p.exists() for p in phase_files)


def test_a_resumed_clustering_phase_counts_the_earlier_attempts_time(data, tmp_path, monkeypatch):
    from dcbench.methods import training

    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0.0)  # save at every update
    save = FileCheckpoint.save

    def dies_after_a_phase_save(self, state):
        save(self, state)
        if self.path.name.endswith(".fit.ckpt"):
            raise RuntimeError("killed")

    monkeypatch.setattr(FileCheckpoint, "save", dies_after_a_phase_save)
    first = execute(plan(["dcec"], seeds=(0,)), data, ResultsStore(tmp_path), progress=False)
    assert first[0]["status"] == "failed" and "killed" in first[0]["error"]
    (phase_file,) = (tmp_path / "pretrained").glob("*.fit.ckpt")
    state = load_torch(phase_file)
    state[FileCheckpoint._WALL] = 1000.0  # pretend the first attempt ran 1000 s
    save_torch(state, phase_file)

    monkeypatch.setattr(FileCheckpoint, "save", save)
    (record,) = execute(plan(["dcec"], seeds=(0,)), data, ResultsStore(tmp_path), progress=False)
    assert record["status"] == "ok" and record["resumed_after_seconds"] == 1000.0
    assert 1000.0 < record["seconds"] < 1000.0 + 60


def _fits_by_method(monkeypatch, stop_at=None, on_fit=None):
    """Count the deep fits per method; ``stop_at``: the method whose fit is interrupted
    (KeyboardInterrupt, as a session stop: nothing of its unit reaches the store);
    ``on_fit(method)`` is called as each fit begins."""
    from dcbench.methods import DeepClusterer

    fits, real_fit = [], DeepClusterer.fit

    def fit(self, *args, **kwargs):
        method = {"none": "cae-kmeans", "kl": "dec-conv", "kl+rec": "dcec"}[self.loss]
        fits.append(method)
        if on_fit is not None:
            on_fit(method)
        if method == stop_at:
            raise KeyboardInterrupt
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(DeepClusterer, "fit", fit)
    return fits


def test_a_unit_interrupted_in_a_later_run_keeps_its_finished_runs(data, tmp_path, monkeypatch):
    """CAE+k-means and DEC-conv done, DCEC interrupted: the rerun fits only DCEC, and the
    table is the one an uninterrupted run writes."""
    methods = ["cae-kmeans", "dec-conv", "dcec"]
    reference = execute(plan(methods, seeds=(0,)), data, ResultsStore(tmp_path / "ref"),
                        progress=False)  # fmt: skip
    fits = _fits_by_method(monkeypatch, stop_at="dcec")
    # as a worker process whose driver was stopped before it looked: nothing stored early
    monkeypatch.setattr(InProcess, "after_each_run", lambda self, store_finished: None)
    with pytest.raises(KeyboardInterrupt):
        execute(plan(methods, seeds=(0,)), data, ResultsStore(tmp_path / "run"), progress=False)
    assert ResultsStore(tmp_path / "run").records() == []  # the unit never reached the store
    finished = sorted(
        p.name.split("__")[0] for p in tmp_path.glob("run/pretrained/*.finished.ckpt")
    )
    assert finished == ["cae-kmeans", "dec-conv"]
    (pretraining,) = tmp_path.glob("run/pretrained/cae__*.ckpt")  # its last epoch, saved
    trained = load_torch(pretraining)["history"]

    fits.clear()
    monkeypatch.undo()
    store = ResultsStore(tmp_path / "run")
    stored_when = {}  # method -> the methods in the store as its fit began
    fits = _fits_by_method(monkeypatch, on_fit=lambda m: stored_when.setdefault(
        m, sorted(r["method"] for r in store.records())))  # fmt: skip
    records = execute(plan(methods, seeds=(0,)), data, store, progress=False)
    assert fits == ["dcec"]
    # the finished runs were stored as the rerun began (their pretraining was on disk)
    assert stored_when == {"dcec": ["cae-kmeans", "dec-conv"]}
    assert outcome(records) == outcome(reference)
    assert not list(tmp_path.glob("run/pretrained/*.finished.ckpt"))  # stored: gone
    assert not list(tmp_path.glob("run/pretrained/*.fit.ckpt"))
    # the weights stored with the unit are the ones its restored runs were fitted from: the
    # pretraining was not run again (same epochs, same timings), and equals the reference's
    (stored,), (want,) = ({r["pretrain_file"] for r in rs} for rs in (records, reference))
    assert load_torch(stored)["history"] == trained and len(trained) == TINY["pretrain_epochs"]
    for key, weights in load_torch(want)["model"].items():
        assert torch.equal(load_torch(stored)["model"][key], weights), key


class _InThread(_Backend):
    """Units run in a background thread on the output folder, as local processes do: the
    driver can look at the folder while a unit runs."""

    def __init__(self, data):
        from concurrent.futures import ThreadPoolExecutor

        self.data, self._pool = data, ThreadPoolExecutor(1)

    def submit(self, unit, cache):
        from dcbench.runner.work import run_unit

        return self._pool.submit(run_unit, unit, self.data[unit.dataset], "cpu",
                                 str(cache.directory))  # fmt: skip

    def close(self):
        self._pool.shutdown(wait=True)


@pytest.mark.parametrize("backend", ["in-process", "in-thread"])
def test_a_run_finished_inside_a_running_unit_is_stored_before_the_unit_ends(
    backend, data, tmp_path, monkeypatch
):
    """CAE+k-means' and DEC-conv's records (with their models and the pretraining they point
    to) are on disk while DCEC of the same unit still runs; the unit's end leaves them as they
    are, and each is counted once. In-process (``--jobs 1``) the driver stores each run as it
    ends; in a thread (as local processes) it finds them in the folder it polls."""
    from dcbench.runner import executor

    monkeypatch.setattr(executor, "FINISHED_RUNS_POLL_SECONDS", 0.05)
    methods = ["cae-kmeans", "dec-conv", "dcec"]
    reference = execute(plan(methods, seeds=(0,)), data, ResultsStore(tmp_path / "ref"),
                        progress=False)  # fmt: skip
    store = ResultsStore(tmp_path / "run")
    stored_when = {}

    def wait_for_the_driver(method):  # DCEC waits (30 s at most) for the others' records
        deadline = time.monotonic() + 30
        while method == "dcec" and len(store.records()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        stored_when[method] = store.records()

    _fits_by_method(monkeypatch, on_fit=wait_for_the_driver)
    runner = _InThread(data) if backend == "in-thread" else None  # None: in-process
    records = execute(plan(methods, seeds=(0,)), data, store, backend=runner, progress=False)
    early = stored_when["dcec"]
    assert sorted(r["method"] for r in early) == ["cae-kmeans", "dec-conv"]
    assert all(Path(r["pretrain_file"]).exists() and Path(r["model_file"]).exists() for r in early)
    assert [r["method"] for r in records] == methods  # each once
    assert outcome(records) == outcome(reference) == outcome(store.records())
    final = {r["method"]: r for r in store.records()}
    assert all(final[r["method"]] == r for r in early)  # the unit's end left them as they were
    assert not list((tmp_path / "run" / "pretrained").glob("*.finished.ckpt"))


@pytest.mark.parametrize("force", [False, True])
def test_a_rerun_after_a_stop_drops_the_kept_copies_of_runs_already_stored(
    force, data, tmp_path, monkeypatch
):
    """In-process, CAE+k-means and DEC-conv are stored as they end; stopped in DCEC, their
    kept files are spare copies. The rerun (the suite's way: pending runs only) fits DCEC
    alone and leaves no kept file behind; with --force it refits all three, restoring none."""
    from dcbench.runner.executor import pending_runs

    methods = ["cae-kmeans", "dec-conv", "dcec"]
    reference = execute(plan(methods, seeds=(0,)), data, ResultsStore(tmp_path / "ref"),
                        progress=False)  # fmt: skip
    store = ResultsStore(tmp_path / "run")
    _fits_by_method(monkeypatch, stop_at="dcec")
    with pytest.raises(KeyboardInterrupt):
        execute(plan(methods, seeds=(0,)), data, store, progress=False)
    assert sorted(r["method"] for r in store.records()) == ["cae-kmeans", "dec-conv"]
    assert len(list(store.pretrained_dir.glob("*.finished.ckpt"))) == 2
    monkeypatch.undo()
    fits = _fits_by_method(monkeypatch)
    todo = pending_runs(plan(methods, seeds=(0,)), store, force=force)
    records = execute(todo, data, store, progress=False)
    assert fits == (methods if force else ["dcec"])
    assert [r["method"] for r in records] == [r.method for r in todo]  # each counted once
    assert outcome(store.records()) == outcome(reference)
    assert not list(store.pretrained_dir.glob("*.finished.ckpt"))
    # the pretraining the worker saved as it ended: its checkpoint went with the rerun's unit
    assert not list(store.pretrained_dir.glob("cae__*.ckpt"))


def test_a_run_that_cannot_be_stored_early_is_stored_with_its_unit(data, tmp_path, monkeypatch):
    """Storing a finished run before its unit ends is a shortcut: a write that fails is a
    warning, the unit goes on, and its runs are stored (once each) when it can; the driver's
    hook does not outlive the suite."""
    methods = ["cae-kmeans", "dec-conv", "dcec"]
    reference = execute(plan(methods, seeds=(0,)), data, ResultsStore(tmp_path / "ref"),
                        progress=False)  # fmt: skip
    real_put, calls = ResultsStore.put, []

    def full_once(self, record):
        calls.append(record["method"])
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real_put(self, record)

    monkeypatch.setattr(ResultsStore, "put", full_once)
    backend = InProcess(data, "cpu")
    store = ResultsStore(tmp_path / "run")
    with pytest.warns(UserWarning, match="could not store a finished run before its unit"):
        records = execute(plan(methods, seeds=(0,)), data, store, backend=backend,
                          progress=False)  # fmt: skip
    assert calls == ["cae-kmeans", "cae-kmeans", "dec-conv", "dcec"]  # retried after DEC-conv
    assert sorted(r["method"] for r in records) == sorted(methods)
    assert outcome(store.records()) == outcome(reference)
    assert backend._store_finished is None


def test_a_unit_stopped_before_its_pretraining_was_stored_stores_it_on_the_rerun(
    data, tmp_path, monkeypatch
):
    """Every run finished, the pretrained weights saved neither by the worker (a warning: the
    disk was full) nor by the driver (it stopped there): the rerun fits nothing again and
    still writes the pretrained weights that the records point to."""
    from dcbench.runner.pretrain_cache import PretrainCache

    methods = ["cae-kmeans", "dec-conv"]
    real_save = PretrainCache.save

    def disk_full(self, key, state):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PretrainCache, "save", disk_full)
    with pytest.raises(OSError), pytest.warns(UserWarning, match="could not save cae__"):
        execute(plan(methods, seeds=(0,)), data, ResultsStore(tmp_path), progress=False)
    assert len(list(tmp_path.glob("pretrained/*.finished.ckpt"))) == 2
    assert not list(tmp_path.glob("pretrained/*.pt")) and not ResultsStore(tmp_path).records()
    monkeypatch.setattr(PretrainCache, "save", real_save)
    fits = _fits_by_method(monkeypatch)
    records = execute(plan(methods, seeds=(0,)), data, ResultsStore(tmp_path), progress=False)
    assert fits == [] and [r["status"] for r in records] == ["ok", "ok"]
    assert all(Path(r["pretrain_file"]).exists() for r in records)
    assert not list(tmp_path.glob("pretrained/*.finished.ckpt"))


def test_a_kept_run_is_restored_only_for_the_same_run(tmp_path):
    """Same protocol, config and pretraining (its key names the device type), or refitted;
    a file that cannot be written is a warning, not a failed run."""
    import dataclasses

    from dcbench.runner.work import finished_result, keep_finished

    (run,) = plan(["dcec"], seeds=(0,))
    path, key = tmp_path / "dcec.finished.ckpt", "cae__tiny__seed0__cpu"
    record = {"method": "dcec", "protocol": run.protocol, "config": run.config}
    keep_finished(path, record, {"labels": [1, 0]}, key)
    assert finished_result(path, run, key) == (record, {"labels": [1, 0]})
    assert finished_result(path, run, "cae__tiny__seed0__cuda") is None
    assert finished_result(path, dataclasses.replace(run, protocol="paper-text"), key) is None
    changed = dataclasses.replace(run, config={**run.config, "gamma": 0.5})
    assert finished_result(path, changed, key) is None
    assert finished_result(tmp_path / "none.finished.ckpt", run, key) is None
    (tmp_path / "a-file").write_text("")
    with pytest.warns(UserWarning, match="could not keep dcec.finished.ckpt"):
        keep_finished(tmp_path / "a-file" / "dcec.finished.ckpt", record, None, key)


def test_the_driver_drops_a_stored_runs_kept_file_where_its_workers_kept_it(tmp_path):
    """Workers with a folder of their own (Ray's shared folder): the kept file goes there too."""
    from dcbench.runner.executor import store_unit
    from dcbench.runner.pretrain_cache import PretrainCache
    from dcbench.runner.work import Unit, UnitResult, run_name

    (run,) = plan(["dcec"], seeds=(0,))
    workers = PretrainCache(tmp_path / "shared")
    kept = workers.finished_run(run_name(run), run.config, 60)
    save_torch({"anything": 1}, kept)
    record = {"method": "dcec", "dataset": "tiny", "seed": 0, "status": "ok", "n_samples": 60}
    store = ResultsStore(tmp_path / "out")
    result = UnitResult([record], [None])
    store_unit(result, Unit((run,), "key"), store, PretrainCache(store.pretrained_dir), workers)
    assert store.get("dcec", "tiny", 0) is not None and not kept.exists()


class _CountingReplacements(InProcess):
    replaced = 0

    def replace_workers(self):
        self.replaced += 1


def test_a_cuda_error_fails_its_run_and_replaces_the_workers(data, tmp_path, monkeypatch):
    """A CUDA error (an illegal memory access, say) may spoil its process's CUDA context:
    the run is recorded as failed, and later units go to fresh worker processes. An out of
    memory error does not spoil it."""
    from dcbench.methods import DeepClusterer
    from dcbench.runner.work import is_device_error

    real_fit = DeepClusterer.fit

    def fit(self, *args, **kwargs):
        if self.random_state == 0:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(DeepClusterer, "fit", fit)
    backend = _CountingReplacements(data, "cpu")
    records = execute(plan(["dec"]), data, ResultsStore(tmp_path), progress=False, backend=backend)
    assert [(r["seed"], r["status"]) for r in records] == [(0, "failed"), (1, "ok")]
    assert backend.replaced == 1
    assert not is_device_error("OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB")
    assert not is_device_error("TrainingDiverged: loss diverged at clustering iteration 30")


def test_replaced_local_workers_finish_the_units_they_hold(data, tmp_path):
    from dcbench.runner.pretrain_cache import PretrainCache
    from dcbench.runner.work import make_units

    backend = LocalProcesses(data, "cpu", jobs=1)
    first, second = make_units(plan(["kmeans"]), {"tiny": 60})
    cache = PretrainCache(tmp_path)
    held = backend.submit(first, cache)
    old = backend._pool
    backend.replace_workers()
    after = backend.submit(second, cache)
    try:
        assert backend._pool is not old
        assert held.result(timeout=120).records[0]["status"] == "ok"  # the old worker's unit
        assert after.result(timeout=120).records[0]["status"] == "ok"
    finally:
        backend.close()


def test_units_on_cuda_run_with_the_stated_numerics(data, monkeypatch):
    """fp32 is fp32 on a GPU (no TF32 in matmuls or cuDNN convolutions) and cuDNN's choice of
    algorithm is deterministic; set per process by the runner (checked here without a GPU)."""
    import torch

    from dcbench.runner import work
    from dcbench.runner.work import make_units, run_unit

    flags = (torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32"), \
        (torch.backends.cudnn, "deterministic"), (torch.backends.cudnn, "benchmark")  # fmt: skip
    # these are properties of torch's backend modules, not attributes monkeypatch can restore
    before = [getattr(m, n) for m, n in flags]
    monkeypatch.setattr(work, "fit_one", lambda run, *args: ({"status": "ok"}, None))
    (unit,) = make_units(plan(["kmeans"], seeds=(0,)), {"tiny": 60})
    try:
        for module, name in flags:
            setattr(module, name, name == "allow_tf32")  # PyTorch's defaults
        run_unit(unit, data["tiny"], "cpu")
        assert torch.backends.cudnn.allow_tf32  # a CPU unit leaves them alone
        run_unit(unit, data["tiny"], "cuda")
        assert [getattr(m, n) for m, n in flags] == [False, False, True, False]
    finally:
        for (module, name), value in zip(flags, before, strict=True):
            setattr(module, name, value)


def test_a_run_holds_every_thread_pool_to_its_threads(data, monkeypatch):
    """--threads reaches scikit-learn's OpenMP (k-means) and BLAS too, not only torch."""
    from threadpoolctl import threadpool_info

    from dcbench.runner import work
    from dcbench.runner.work import make_units, run_unit

    seen = []
    monkeypatch.setattr(
        work, "fit_one", lambda run, *args: (seen.append(threadpool_info()), ({}, None))[1]
    )
    (unit,) = make_units(plan(["kmeans"], seeds=(0,)), {"tiny": 60})
    run_unit(unit, data["tiny"], "cpu", threads=1)
    pools = {(p["user_api"], p["num_threads"]) for p in seen[0]}
    assert {api for api, _ in pools} >= {"openmp"} and {n for _, n in pools} == {1}
