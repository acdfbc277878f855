"""The shape of the code: a stage imports only infrastructure (jobs.core), udfs and models, never
another stage (nightly, backfill and main excepted, as orchestrators); udfs and models never import jobs;
and no import cycle anywhere. Imports are read from the source (function-local ones included)."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGES = ("jobs", "udfs", "models")
ORCHESTRATORS = {"jobs.nightly", "jobs.backfill", "jobs.main"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports, wherever the import stands."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import module` imports the module; `from module import name`, the module
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name.split(".")[0] in PACKAGES and name not in PACKAGES:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def is_stage(name: str) -> bool:
    return name.startswith("jobs.") and not name.startswith("jobs.core")


def test_stages_import_only_core_udfs_and_models():
    bad = {name: sorted(i for i in deps if is_stage(i))
           for name, deps in graph().items() if is_stage(name) and name not in ORCHESTRATORS}
    assert not {k: v for k, v in bad.items() if v}, f"stages importing stages: {bad}"


def test_udfs_and_models_never_import_jobs_and_core_never_imports_a_stage():
    g = graph()
    for name, deps in g.items():
        if name.startswith(("udfs", "models")):
            assert not [d for d in deps if d.startswith("jobs")], (name, deps)
        if name.startswith("jobs.core"):
            assert not [d for d in deps if is_stage(d) and d != "jobs.main"], (name, deps)


def test_no_import_cycle_anywhere():
    g = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for dep in g.get(node, ()):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in g:
        if node not in state:
            visit(node, [node])
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_a_stage_importing_a_stage(tmp_path):
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from jobs import ingest\n    from jobs.core import delta_io\n")
    assert imports_of(fake, set(modules())) == {"jobs.ingest", "jobs.core.delta_io"}


def test_a_data_stage_run_on_its_own_does_not_import_the_model_libraries():
    """`main.py ingest` / `clean` (and a backfill's days without models) import what they run: the
    model stages' torch and matplotlib (about 3 s of a driver's start) only when a model stage runs."""
    probe = ("import sys; from jobs import main, nightly, ingest, clean, backfill; main._jobs(); "
             "print(sorted(m for m in ('torch', 'matplotlib', 'gensim', 'xgboost') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
    probe = "import sys; from jobs import recommend; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr[-2000:]  # the probe sees an import when there is one
