"""bench/speed_gpu.py runs through every code path (on CPU, tiny sizes) and writes its tables,
so the first session with a GPU can spend its device time measuring, not debugging."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "speed_gpu.py"


@pytest.fixture
def speed_gpu(monkeypatch):
    spec = importlib.util.spec_from_file_location("speed_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "speed_gpu", module)  # worker processes import it by name
    spec.loader.exec_module(module)  # (it puts bench/ on sys.path, which they inherit)
    return module


def test_speed_gpu_quick_on_cpu_writes_every_arm(speed_gpu, tmp_path, monkeypatch):
    monkeypatch.setattr(speed_gpu, "NETS", {"CAE 16x16": ("cae", (1, 16, 16))})
    speed_gpu.main(["--device", "cpu", "--quick", "--repeats", "1", "--workers", "2",
                    "--out", str(tmp_path)])  # fmt: skip
    result = json.loads((tmp_path / "speed_gpu.json").read_text())
    arms = {(r["phase"], r["arm"]) for r in result["rows"]}
    assert len(arms) == 8 and all(r["samples_per_s"] > 0 for r in result["rows"])
    assert ("pretraining", "ours bf16, 2 processes") in arms
    assert (
        "| clustering (DCEC) | CAE 16x16 | naive fp32 |" in (tmp_path / "speed_gpu.md").read_text()
    )


def test_speed_gpu_without_cuda_says_how_to_check_it(speed_gpu, monkeypatch):
    monkeypatch.setattr(speed_gpu.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="--device cpu --quick"):
        speed_gpu.main(["--device", "cuda"])
