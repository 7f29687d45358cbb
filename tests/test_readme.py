"""What README.md and the manual (docs/) say matches the project: the two set-up commands are
exactly what CI runs, and the commands, modules, files, config groups and options they name
exist."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
BENCHMARKS = ROOT / "benchmarks" / "README.md"

# names written as examples of what is refused
DELIBERATE_TYPOS = {("model", "hiden_size")}


def text(*paths: Path) -> str:
    return "\n".join(p.read_text() for p in paths)


def manual() -> str:
    """README.md and every page of docs/."""
    return text(README, *PAGES)


def page(name: str) -> str:
    return (ROOT / "docs" / name).read_text()


def test_ci_runs_the_readme_commands_verbatim():
    readme = README.read_text()
    assert readme.index("## The two commands") < readme.index("```bash")
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    assert "pip install" in commands[0] and "forecast-train" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci, f"CI does not run the README command: {command}"


def test_console_scripts_are_the_documented_ones():
    pyproject = (ROOT / "pyproject.toml").read_text()
    section = re.search(r"^\[project\.scripts\]\n(.*?)(?:^\[|\Z)", pyproject, re.S | re.M).group(1)
    scripts = set(re.findall(r"^([\w-]+)\s*=", section, re.M))
    assert scripts == {"forecast-train", "forecast-predict", "forecast-report"}
    documented = set(re.findall(r"\bforecast-(?:train|predict|report|[a-z]+)\b", manual()))
    assert documented <= scripts, f"documented commands that do not exist: {documented - scripts}"
    assert scripts <= documented


def test_python_m_modules_run():
    """Every `python -m forecast....` named is a module with a __main__ guard."""
    named = set(re.findall(r"python -m (forecast(?:\.\w+)+)", manual()))
    assert "forecast.runs.train_cli" in named
    for module in named:
        path = ROOT / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"python -m {module}: no such module"
        assert 'if __name__ == "__main__":' in path.read_text(), f"{module} does not run with -m"


def test_named_files_exist():
    """Paths of the repository (forecast/..., conf/..., tests/..., benchmarks/..., data/...)."""
    named = set(re.findall(
        r"(?<![\w./-])((?:forecast|conf|tests|benchmarks|data)/[\w./-]+\.(?:py|yaml|csv|md))",
        text(README, BENCHMARKS, *PAGES)))
    assert "forecast/config.py" in named
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert not missing, f"named in the docs, not in the repository: {missing}"


def _defines(source: str, name: str) -> bool:
    pattern = rf"^\s*(?:def|class)\s+{name}\b|^{name}\s*[:=]|^from .* import .*\b{name}\b"
    return bool(re.search(pattern, source, re.M))


def test_dotted_names_resolve():
    """`forecast.models.manual_lstm.ManualLSTM`, `forecast.fit`, ...: a module and a name in it."""
    named = set(re.findall(r"`[^`\n]*?\b(forecast(?:\.\w+)+)", text(README, BENCHMARKS, *PAGES)))
    named = {n for n in named if not re.search(r"\.(csv|parquet|png|json|log)$", n)}
    assert {"forecast.fit", "forecast.load_run"} <= named
    for dotted in sorted(named):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            base = ROOT.joinpath(*parts[:cut])
            module = base.with_suffix(".py") if base.with_suffix(".py").is_file() \
                else base / "__init__.py"
            if module.is_file():
                break
        rest = parts[cut:]
        assert len(rest) <= 1, f"{dotted}: no module {'.'.join(parts[:cut + 1])}"
        if rest:
            assert _defines(module.read_text(), rest[0]), f"{dotted}: {module} has no {rest[0]}"


def _schema() -> dict[str, set[str]]:
    from forecast.config import DataConfig, EvaluateConfig, ModelConfig, TrainConfig

    return {"data": {f.name for f in dataclasses.fields(DataConfig)},
            "model": {f.name for f in dataclasses.fields(ModelConfig)},
            "evaluate": {f.name for f in dataclasses.fields(EvaluateConfig)},
            "": {f.name for f in dataclasses.fields(TrainConfig)}}


def test_documented_options_exist():
    """data.*, model.* and evaluate.* options named anywhere are keys of the typed schema."""
    schema = _schema()
    named = set(re.findall(r"(?<![\w./-])(data|model|evaluate)\.([a-z_]+)\b", manual()))
    named = {(group, key) for group, key in named if not (group == "data" and key == "json")}
    assert ("model", "quantiles") in named and ("evaluate", "calibration") in named
    unknown = sorted(f"{g}.{k}" for g, k in named - DELIBERATE_TYPOS if k not in schema[g])
    assert not unknown, f"documented options missing from forecast/config.py: {unknown}"
    for group, key in DELIBERATE_TYPOS:
        assert key not in schema[group]
    for key in ("lookback", "horizon", "targets", "seed", "early_stopping_patience", "resume",
                "threads"):
        assert key in schema[""] and re.search(rf"`[^`]*\b{key}\b", manual()), key


def test_model_options_table_is_complete():
    """docs/models.md has a row for every model.* option of the schema, and no other."""
    rows = re.findall(r"^\| ([^|]+) \|", page("models.md"), re.M)
    documented = {name for row in rows for name in re.findall(r"`(\w+)`", row)}
    documented |= {name for row in rows for name in re.findall(r"`(\w+)=", row)}
    options = _schema()["model"] - {"name"}
    assert options <= documented, f"undocumented model options: {sorted(options - documented)}"
    assert documented - {"option"} <= options, sorted(documented - options)


def test_config_groups_exist():
    """model=..., data=..., +experiment=..., every value named, is a file of conf/<group>/."""
    named = re.findall(
        r"(?<![\w./(-])\+?(data|model|trainer|logger|experiment|hparams_search)=([\w,]+)",
        manual())
    assert ("model", "segrnn") in named and ("experiment", "ett") in named
    for group, values in named:
        for value in filter(None, values.split(",")):
            assert (ROOT / "conf" / group / f"{value}.yaml").is_file(), f"{group}={value}"
    groups = page("configuration.md")
    for folder in sorted(p for p in (ROOT / "conf").iterdir() if p.is_dir()
                         and not p.name.startswith("_")):
        assert f"`{folder.name}/`" in groups, f"docs/configuration.md misses conf/{folder.name}/"
        for option in sorted(folder.glob("*.yaml")):
            assert option.stem in manual(), f"{folder.name}={option.stem} is not documented"


@pytest.mark.parametrize("name", ["gpu", "ddp"])
def test_trainer_configs_quoted_verbatim(name):
    """docs/scale-out.md shows conf/trainer/gpu.yaml and ddp.yaml as they are."""
    blocks = re.findall(r"```yaml\n(.*?)```", page("scale-out.md"), re.S)
    assert (ROOT / "conf" / "trainer" / f"{name}.yaml").read_text() in blocks


def test_verdicts_quoted_are_the_ones_printed():
    source = (ROOT / "forecast" / "report" / "tables.py").read_text()
    for sentence in ("The model beats every baseline on test MAE and RMSE.",
                     "It does worse than repeating the last value (persistence) on"):
        assert sentence in text(README, ROOT / "docs" / "run.md")
        assert sentence in source


def test_benchmark_options_documented():
    """docs/performance.md lists every option of benchmarks/bench.py, and no other."""
    source = (ROOT / "benchmarks" / "bench.py").read_text()
    options = {o for o, rest in re.findall(r'add_argument\("(--[\w-]+)"(.*)', source)
               if "SUPPRESS" not in rest}
    documented = set(re.findall(r"`(--[\w-]+)", page("performance.md")))
    assert options == documented, (sorted(options - documented), sorted(documented - options))


def test_default_scores_agree():
    """The default run's score table is quoted the same in README.md and docs/run.md."""
    table = re.compile(r"```\n(Test scores on .*?)```", re.S)
    readme = table.search(README.read_text()).group(1)
    assert readme == table.search(page("run.md")).group(1)
    assert "* model               3.680    5.159" in readme
