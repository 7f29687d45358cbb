"""Configs a user did not mean, refused before any data is read: a key outside the schema (a
typo, with or without `+`, answered with the nearest known key) and a `data.path` given while a
built-in data set is selected (which would train on the built-in data and ignore the file).

`overrides(strings)` checks the override strings before Hydra composes them (Hydra's own
answer to an unknown key is to suggest `+key=...`, which then trains with the typo ignored) and
returns them with `experiment=...` / `hparams_search=...` as the `+experiment=...` Hydra needs
(those groups are not in train.yaml's defaults list: there, `+experiment=...`, which users
write, would be refused as a second choice). `check(cfg)` checks a composed config; both raise
a ValueError naming the option and the fix. `Refusals`, a Hydra callback, runs `check` before
forecast-train creates a run or sweep folder.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from functools import cache
from importlib import resources
from typing import Any, get_type_hints

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from forecast import config

BUILT_IN = ("nyc_weather", "city_weather", "synthetic")  # data groups that read no file
SELECTED = ("experiment", "hparams_search")  # groups of the defaults list users add with `+`
FREE = ("hydra",)  # Hydra's own keys, checked by Hydra


@cache
def _options(record: type) -> dict[str, Any]:
    """A schema node's keys and their types: {name: type} of the dataclass."""
    hints = get_type_hints(record)
    return {f.name: hints[f.name] for f in fields(record)}


@cache
def _groups() -> tuple[str, ...]:
    """The config groups of the packaged configs (data, model, ..., experiment)."""
    return tuple(sorted(p.name for p in resources.files("forecast.conf").iterdir()
                        if p.is_dir() and not p.name.startswith("_")))


def _key(override: str) -> str:
    """The dotted key of an override string: `+model.hidden_size=3` -> model.hidden_size."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("@", 1)[0].strip()


def unknown(override: str) -> str | None:
    """Why the override's key is outside the schema, with the nearest known key; None when it
    is known, a group, Hydra's, or under a free-form node (trainer.*, logger.*, data.units.*)."""
    key = _key(override)
    if not key or "/" in key:
        return None  # a group path (hydra/launcher=joblib): Hydra names the choices
    parts = key.split(".")
    if parts[0] in FREE or (len(parts) == 1 and parts[0] in _groups()):
        return None
    node, known_path = config.TrainConfig, []
    for i, part in enumerate(parts):
        if not (isinstance(node, type) and is_dataclass(node)):
            return None  # a free-form mapping or a value: its keys are not the schema's
        names = sorted({*_options(node), *(_groups() if i == 0 else ())})
        if part not in names:
            where = ".".join(known_path) or "the top level"
            close = difflib.get_close_matches(part, names, n=1)
            if close:
                fixed = ".".join([*known_path, close[0], *parts[i + 1:]])
                value = override.split("=", 1)[1] if "=" in override else None
                hint = f"did you mean {'~' + fixed if value is None else f'{fixed}={value}'}?"
            else:
                hint = f"the keys of {where}: {', '.join(names)}"
            plus = " (a + adds no option either)" if override.startswith("+") else ""
            return f"{override}: '{key}' is not a config option{plus}; {hint}"
        known_path.append(part)
        node = _options(node).get(part)
    return None


def overrides(strings: Sequence[str]) -> list[str]:
    """Override strings checked (ValueError for a key outside the schema), `experiment=...` and
    `hparams_search=...` given as `+experiment=...` and `+hparams_search=...`."""
    problems = [p for p in (unknown(s) for s in strings) if p]
    if problems:
        raise ValueError("; ".join(problems))
    return [f"+{s}" if _key(s) in SELECTED and s[0] not in "+~" and "=" in s
            and s.split("=", 1)[1] != "null" else s for s in strings]


def check(cfg: DictConfig) -> None:
    """A composed config: a data.path with a built-in data set (which reads no file) refused."""
    data = cfg.get("data")
    if data is None:
        return
    path = OmegaConf.select(data, "path", throw_on_missing=False)
    name = data.get("name")
    if path is not None and name in BUILT_IN:
        raise ValueError(f"data.path={path} is a file of your own, but data={name} (the "
                         f"built-in data set) is selected: add data=csv to read the file")


def argv(args: Sequence[str]) -> list[str]:
    """forecast-train's command line with its override strings through `overrides`; flags
    (-m, --cfg job, ...) and their values are kept as they are."""
    fixed = iter(overrides([a for a in args if _is_override(a)]))
    return [next(fixed) if _is_override(a) else a for a in args]


def _is_override(arg: str) -> bool:
    """An override string (key=value, ~key), not a flag or a flag's value."""
    return not arg.startswith("-") and ("=" in arg or arg.startswith("~"))


class Refusals(Callback):
    """conf/train.yaml's hydra.callbacks.intent: `check` on the composed config before Hydra
    creates the run or sweep folder; a refusal is one line on stderr and exit status 2."""

    def _refuse(self, cfg: DictConfig) -> None:
        try:
            check(cfg)
        except ValueError as error:
            print(f"forecast-train: {error}", file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._refuse(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._refuse(config)
