"""The input scale of the deep estimator and the named protocol variants."""

import json

import numpy as np
import pytest
from conftest import FAST, assert_same_fit, blobs

from dcbench.cli import main
from dcbench.core.errors import UsageError
from dcbench.methods import DeepClusterer
from dcbench.methods.protocols import PROTOCOLS
from dcbench.runner.executor import pending_runs
from dcbench.runner.plan import make_plan, protocol_of
from dcbench.runner.pretrain_cache import pretrain_key
from dcbench.runner.store import ResultsStore
from dcbench.runner.work import pretrain_key_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# the SAE's protocol optimizer (SGD), short
FAST = {**FAST, "backbone": "sae", "pretrain_optimizer": "sgd", "pretrain_lr": 0.01,
        "pretrain_momentum": 0.9, "maxiter": 40, "random_state": 0, "n_clusters": 3}  # fmt: skip


@pytest.mark.parametrize("loss", ["none", "kl", "kl+rec"])
def test_a_fit_with_scale_s_is_a_fit_on_inputs_times_s(loss):
    x, _ = blobs()
    scaled = DeepClusterer(loss=loss, input_scale=2.0, **FAST).fit(x)
    by_hand = DeepClusterer(loss=loss, input_scale=1.0, **FAST).fit(x * np.float32(2.0))
    assert_same_fit(scaled, by_hand)
    assert losses(scaled) == losses(by_hand)
    # ... and it is a different fit from the unscaled one (the scale reaches the network)
    plain = DeepClusterer(loss=loss, input_scale=1.0, **FAST).fit(x)
    assert losses(plain) != losses(scaled)


def losses(est) -> list[float]:
    return [h["rec"] for h in est.history_["pretrain"]]


def test_transform_and_predict_scale_new_data():
    x, _ = blobs()
    est = DeepClusterer(loss="kl", input_scale=3.0, **FAST).fit(x)
    twin = DeepClusterer(loss="kl", input_scale=1.0, **FAST).fit(x * np.float32(3.0))
    new, _ = blobs(seed=1)
    np.testing.assert_array_equal(est.transform(new), twin.transform(new * np.float32(3.0)))
    np.testing.assert_array_equal(est.predict(new), twin.predict(new * np.float32(3.0)))
    np.testing.assert_array_equal(est.predict(x), est.labels_)


def test_a_restored_estimator_embeds_with_its_scale():
    from dcbench.runner.work import fitted_state

    x, _ = blobs()
    est = DeepClusterer(loss="kl", input_scale=3.0, **FAST).fit(x)
    restored = DeepClusterer(loss="kl", input_scale=3.0, **FAST).restore(
        fitted_state(est), x.shape[1:]
    )
    np.testing.assert_array_equal(restored.transform(x), est.transform(x))
    np.testing.assert_array_equal(restored.predict(x), est.labels_)


def test_the_cache_keeps_saes_of_different_scales_apart_and_old_keys_valid():
    config = DeepClusterer(backbone="sae").pretrain_config()
    one = pretrain_key("usps", 100, 0, config)
    two = pretrain_key("usps", 100, 0, {**config, "input_scale": 2.0})
    assert one != two
    # scale 1 is what every run had before the parameter existed: its key is unchanged
    before = {k: v for k, v in config.items() if k != "input_scale"}
    assert pretrain_key("usps", 100, 0, before) == one


def test_sae_methods_share_one_scaled_pretraining_per_dataset():
    plan = make_plan(["sae-kmeans", "dec", "idec", "dcn"], ["usps"], [0])
    assert {r.config["input_scale"] for r in plan} == {2.0}
    assert len({pretrain_key_of(r, 9298) for r in plan}) == 1
    cae = make_plan(["cae-kmeans", "dcec"], ["usps"], [0])
    assert {r.config["input_scale"] for r in cae} == {1.0}


def test_a_protocols_overrides_reach_the_resolved_config():
    paper = {r.method: r for r in make_plan(["dec", "idec", "dcec"], ["usps"], [0])}
    text = {
        r.method: r
        for r in make_plan(["dec", "idec", "dcec"], ["usps"], [0], protocol="paper-text")
    }
    keras = {r.method: r for r in make_plan(["dec", "dcec"], ["usps"], [0], protocol="dec-keras")}
    assert paper["idec"].config["lr"] == 0.01 and text["idec"].config["lr"] == 0.1
    assert paper["dec"].config["input_scale"] == 2.0 and text["dec"].config["input_scale"] == 1.0
    assert (keras["dec"].config["pretrain_optimizer"], keras["dec"].config["pretrain_epochs"]) == (
        "adam",
        50,
    )
    assert keras["dec"].config["input_scale"] == 1.0
    # the CAE family is the same under every protocol
    assert paper["dcec"].config == text["dcec"].config == keras["dcec"].config
    assert {r.protocol for r in text.values()} == {"paper-text"}
    # --set still wins over the protocol
    over = make_plan(["dec"], ["usps"], [0], {"dec": {"input_scale": 7.0}}, protocol="paper-text")
    assert over[0].config["input_scale"] == 7.0


def test_every_protocol_value_is_a_parameter_of_the_methods_it_names():
    for name in PROTOCOLS:
        for method in ("sae-kmeans", "dec", "idec", "dcn", "cae-kmeans", "dec-conv", "dcec"):
            for dataset in ("usps", "mnist-test", "mnist-full", "digits"):
                make_plan([method], [dataset], [0], protocol=name)  # raises on a bad key


def test_unknown_protocol_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(
        UsageError, match="unknown protocol 'nope'; choose from: paper, paper-text, dec-keras"
    ):
        make_plan(["dec"], ["usps"], [0], protocol="nope")
    code = main(["--protocol", "nope", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "unknown protocol 'nope'" in err
    assert not (tmp_path / "out").exists()


def test_list_shows_each_protocol_and_what_it_sets(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "paper-text" in out and "idec on usps: lr=0.1" in out and "dec-keras" in out


def _old_record(run) -> dict:
    """A record as written before protocols and the input scale existed."""
    config = {k: v for k, v in run.config.items() if k != "input_scale"}
    return {"method": run.method, "dataset": run.dataset, "seed": run.seed, "config": config,
            "status": "ok", "metrics": {"acc": 0.5}}  # fmt: skip


def test_records_from_before_protocols_are_read_by_their_config(tmp_path):
    store = ResultsStore(tmp_path)
    cae = make_plan(["dcec"], ["usps"], [0])[0]
    sae_old = make_plan(["dec"], ["usps"], [0], protocol="paper-text")[0]
    store.put(_old_record(cae))
    store.put(_old_record(sae_old))
    assert protocol_of(store.get("dcec", "usps", 0)) == "paper"
    assert protocol_of(store.get("dec", "usps", 0)) == "paper-text"
    assert protocol_of({**_old_record(cae), "config": {**cae.config, "gamma": 0.7}}) == "custom"
    # an old CAE record is a finished run of today's paper protocol: skipped, not refused
    assert pending_runs([cae], store) == []
    # the old SAE record ran on [0, 1] inputs: today's paper protocol is another config
    with pytest.raises(UsageError, match="changed: input_scale"):
        pending_runs(make_plan(["dec"], ["usps"], [0]), store)
    assert pending_runs([sae_old], store) == []
    frame = store.dataframe()
    assert dict(zip(frame["method"], frame["protocol"], strict=True)) == {
        "dcec": "paper",
        "dec": "paper-text",
    }


def test_protocols_never_share_a_cell_or_a_folder(tmp_path):
    from dcbench.reports.tables import markdown_table, summarize

    store = ResultsStore(tmp_path)
    paper = make_plan(["dcec"], ["usps"], [0])[0]
    store.put({**_old_record(paper), "protocol": "paper", "config": paper.config})
    text = make_plan(["dcec"], ["usps"], [0], protocol="paper-text")[0]
    # the same config under another protocol is refused in the same folder
    with pytest.raises(UsageError, match="under protocol 'paper', not 'paper-text'"):
        pending_runs([text], store)
    other = ResultsStore(tmp_path / "two")
    other.put({**_old_record(paper), "protocol": "paper", "config": paper.config})
    other.put({**_old_record(text), "seed": 1, "protocol": "paper-text", "config": text.config})
    summary = summarize(other.dataframe())
    assert sorted(summary["method"]) == ["dcec [paper-text]", "dcec [paper]"]
    assert set(summary["n"]) == {1}
    md = markdown_table(summary)
    assert "Protocols: 'paper'" in md and "'paper-text'" in md
    assert "| dcec [paper] |" in md and "79.00" in md  # the paper's number beside each


def test_records_store_their_protocol(tmp_path, capsys):
    code = main(["--no-progress", "--no-figures", "--methods", "kmeans", "--seeds", "0,",
                 "--protocol", "paper-text", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "records" / "kmeans__digits__seed0.json").read_text())
    assert record["protocol"] == "paper-text"
    assert "Protocol: 'paper-text'" in (tmp_path / "tables" / "table.md").read_text()


def test_bf16_on_a_cpu_without_it_warns_once(monkeypatch):
    import warnings

    import torch

    from dcbench.core import runinfo
    from dcbench.methods import training

    monkeypatch.setattr(
        runinfo, "cpu_features", lambda: {"cpu_capability": "AVX2", "bf16_native": False}
    )
    training._warn_emulated_bf16.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            training.check_precision("bf16", torch.device("cpu"))
        training.check_precision("fp32", torch.device("cpu"))
    assert len(caught) == 1 and "without native bf16 (AVX2)" in str(caught[0].message)
    monkeypatch.setattr(
        runinfo, "cpu_features", lambda: {"cpu_capability": "AVX512", "bf16_native": True}
    )
    training._warn_emulated_bf16.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        training.check_precision("bf16", torch.device("cpu"))
    assert not caught


def test_records_say_which_kind_of_cpu(tmp_path, capsys):
    from dcbench.core import runinfo

    assert (
        main(
            [
                "--no-progress",
                "--no-figures",
                "--methods",
                "kmeans",
                "--seeds",
                "0,",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    record = json.loads((tmp_path / "records" / "kmeans__digits__seed0.json").read_text())
    assert record["cpu_capability"] == runinfo.cpu_features()["cpu_capability"]
    assert isinstance(record["bf16_native"], bool)


def test_the_device_is_part_of_the_cache_key_and_of_a_folders_identity(tmp_path):
    run = make_plan(["dcec"], ["usps"], [0])[0]
    cpu, cuda = pretrain_key_of(run, 9298, "cpu"), pretrain_key_of(run, 9298, "cuda")
    assert cpu != cuda and pretrain_key_of(run, 9298, "cuda:1") == cuda
    # CPU keys are those of the files cached before the device was part of the key
    config = {**DeepClusterer(**run.config).pretrain_config()}
    assert cpu == pretrain_key(
        "usps", 9298, 0, {k: v for k, v in config.items() if k != "input_scale"}
    )
    store = ResultsStore(tmp_path)
    store.put({**_old_record(run), "protocol": "paper", "config": run.config, "device": "cpu"})
    assert pending_runs([run], store, device="cpu") == []
    with pytest.raises(UsageError, match="run on cpu, and this run is on cuda"):
        pending_runs([run], store, device="cuda")


def test_auto_precision_gives_bf16_only_to_proven_methods_on_native_hardware(monkeypatch):
    import dataclasses

    from dcbench.core import runinfo
    from dcbench.methods import METHODS

    def cpu(native):
        monkeypatch.setattr(
            runinfo, "cpu_features", lambda: {"cpu_capability": "X", "bf16_native": native}
        )

    def precision(method, **overrides):
        return make_plan([method], ["usps"], [0], {method: overrides})[0].config["precision"]

    assert not [m for m in METHODS if METHODS.get(m).bf16_proven]  # no proof exists yet
    cpu(False)
    assert precision("dcec") == "fp32"
    monkeypatch.setitem(
        METHODS._entries, "dcec", dataclasses.replace(METHODS.get("dcec"), bf16_proven=True)
    )
    assert precision("dcec") == "fp32"  # proven, but this CPU emulates bf16
    cpu(True)
    assert precision("dcec") == "bf16" and precision("dec-conv") == "fp32"  # dec-conv: unproven
    assert precision("dcec", precision="fp32") == "fp32"  # an explicit choice stays
    assert DeepClusterer().precision == "auto"
