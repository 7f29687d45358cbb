"""The package's floor plan as a checked contract: the layers of pyproject's import-linter
contract (api > runs > report > evaluation > models > data > config), no import circle between
modules, config.py importing nothing of the package, and modules of at most 400 lines."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp", reason="grimp comes with the dev extra's import-linter")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "forecast"


def test_the_layers_contract_holds():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("lint-imports is not installed (pip install -e '.[dev]')")
    run = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "layers KEPT" in run.stdout


def _module_graph() -> grimp.ImportGraph:
    return grimp.build_graph("forecast")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), function-level imports
    included."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_import_circle():
    assert _cycles(_module_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    graph = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    assert _cycles(graph) == [["p.a", "p.b"]]


def test_config_imports_nothing_of_the_package():
    graph = _module_graph()
    assert graph.find_modules_directly_imported_by("forecast.config") == set()


def test_every_layer_is_a_folder_and_no_module_is_over_400_lines():
    layers = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert {"data", "models", "evaluation", "report", "runs"} <= layers
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == {"__init__.py", "config.py", "api.py"}
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_architecture_names_every_module_and_only_those():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    table = text[text.index("### Modules, by layer"):text.index("## Data flow")]
    named = set(re.findall(r"`((?:[a-z]+/)?[a-z_]+\.py)`", table))
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if p.name != "__init__.py"}
    assert named == modules


def test_every_subpackage_is_packaged():
    """A wheel holds only the packages pyproject lists: each layer must be one of them."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {"forecast", *(f"forecast.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py"))}
    assert found <= listed
