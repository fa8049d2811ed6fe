"""The import contract: each layer imports only its own layer and the layers below it.

    CLI (dcbench.cli, the Python entry point dcbench.suite, python -m reports)
    reports
    runner (plan, work, executor, backends, store, pretraining cache)
    datasets | methods   (independent of each other)
    core (registry, errors, file I/O, metrics, run information): imports nothing of ours

Every import counts, including those inside functions.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# repository folder -> import path (pyproject's package-dir mapping)
FOLDERS = {"dcbench": "dcbench", "datasets": "dcbench.datasets", "methods": "dcbench.methods",
           "reports": "dcbench.reports"}  # fmt: skip
LAYERS = [  # top first
    ("cli", ("dcbench.cli", "dcbench.suite", "dcbench.reports.__main__")),
    ("reports", ("dcbench.reports",)),
    ("runner", ("dcbench.runner",)),
    ("datasets", ("dcbench.datasets",)),
    ("methods", ("dcbench.methods",)),
    ("core", ("dcbench.core",)),
]
# what each layer may import, besides itself (datasets and methods do not import each other)
MAY_IMPORT = {
    "cli": {"reports", "runner", "datasets", "methods", "core"},
    "reports": {"runner", "datasets", "methods", "core"},
    "runner": {"datasets", "methods", "core"},
    "datasets": {"core"},
    "methods": {"core"},
    "core": set(),
}


def layer_of(module: str) -> str | None:
    best = None
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[1])
            ):
                best = (name, prefix)
    return best[0] if best else None


def modules():
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package, *parts)), path


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m == "dcbench" or m.startswith("dcbench.")}


def test_every_module_is_in_a_layer():
    assert [m for m, _ in modules() if m != "dcbench" and layer_of(m) is None] == []


def test_layers_import_only_downwards():
    broken = []
    for module, path in modules():
        mine = layer_of(module)
        for target in imports(path):
            theirs = layer_of(target)
            if theirs is not None and theirs != mine and theirs not in MAY_IMPORT.get(mine, set()):
                broken.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert broken == []


def test_the_contract_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from dcbench.runner.store import ResultsStore\n")
    assert "dcbench.runner.store" in imports(bad)
    assert layer_of("dcbench.core.metrics") == "core"
    assert "runner" not in MAY_IMPORT["core"]


def test_torch_is_imported_before_scikit_learn_in_every_entry_point():
    """The OpenMP runtime loaded first changes float rounding (DCEC on digits: 62.44 vs 61.99
    ACC); dcbench imports torch first so that the driver and the workers agree."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from dcbench.cli import main\n"
        "main(['--methods', 'nope'])\n"
        "mods = list(sys.modules)\n"
        "print(mods.index('torch') < mods.index('sklearn'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True"
