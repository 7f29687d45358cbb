"""What a run keeps per (series, step): the panel's values and the scaled features, nothing else;
the parts are joined per batch into exactly the arrays the network saw before."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from conftest import inputs_of, weather_frame
from hydra import compose, initialize_config_module

from forecast.config import DataConfig
from forecast.data import largepanel, loader, mapped, parquet_scan
from forecast.data.panel import (
    Panel,
    Scaler,
    calendar,
    fill_causal,
    fingerprint,
    scaled_filled,
    to_panel,
)
from forecast.data.prepared import datamodule, prepare
from forecast.data.windows import gather
from forecast.runs import train

L, H = 24, 6


@pytest.fixture
def gappy_panel(long_df):
    """The conftest panel with holes in both features, a target gap included."""
    df = long_df.copy()
    rng = np.random.default_rng(0)
    df.loc[rng.random(len(df)) < 0.05, "b"] = np.nan
    df.loc[rng.random(len(df)) < 0.01, "a"] = np.nan
    return to_panel(df.drop(index=df.index[7:9]), "h")


def test_observed_is_derived_from_the_values_not_stored(gappy_panel):
    assert "observed" not in {f.name for f in dataclasses.fields(Panel)}
    values = gappy_panel.values
    np.testing.assert_array_equal(gappy_panel.observed, ~np.isnan(values))
    assert not gappy_panel.observed.all() and gappy_panel.observed.dtype == bool


def _explicit_inputs(panel, scaler, parts, with_mask):
    """The old (N, T, F_in) array: features, the calendar copied into every series, the mask."""
    cal, _ = calendar(panel.times, parts)
    columns = [fill_causal(scaler.transform(panel.values)),
               np.broadcast_to(cal, (panel.n_series, *cal.shape))]
    if with_mask:
        columns.append((~np.isnan(panel.values)).astype(np.float32))
    return np.concatenate(columns, axis=2)


@pytest.mark.parametrize("with_mask", [False, True])
def test_batches_equal_gathers_over_the_concatenated_array(gappy_panel, with_mask):
    parts = ("hour", "day_of_year")
    prep = prepare(gappy_panel, L, H, ["a"], calendar=parts, mask_features=with_mask)
    whole = _explicit_inputs(gappy_panel, prep.scaler, parts, with_mask)
    targets = np.nan_to_num(prep.scaler.transform(gappy_panel.values[:, :, [0]], [0]))
    assert prep.model_inputs.shape == whole.shape
    dm = datamodule(prep)
    for split in ("train", "val", "test"):
        index = prep.indices[split]
        pick = np.linspace(0, len(index) - 1, 7).astype(int).tolist()
        x, y, series = dm.dataset(split)[pick]
        np.testing.assert_array_equal(x.numpy(), gather(whole, index[pick], 0, L))
        np.testing.assert_array_equal(y.numpy(), gather(targets, index[pick], L, H))
        np.testing.assert_array_equal(series.numpy(), index[pick, 0])
    np.testing.assert_array_equal(inputs_of(prep), whole)


def test_a_run_keeps_two_raw_arrays_per_series_and_step(gappy_panel):
    prep = prepare(gappy_panel, L, H, ["a"], mask_features=True)
    raw = gappy_panel.values.nbytes
    assert prep.model_inputs.nbytes_per_series * gappy_panel.n_series == raw
    per_step = [f.name for f in dataclasses.fields(prep)
                if isinstance(getattr(prep, f.name), np.ndarray)]
    assert per_step == []  # Prepared holds arrays only through the panel and the inputs


@pytest.mark.parametrize("n_features", [2, 5])
def test_scaler_by_blocks_equals_the_one_pass_fit(monkeypatch, n_features):
    rng = np.random.default_rng(n_features)
    values = (rng.normal(size=(9, 500, n_features)) * rng.uniform(0.1, 500, n_features)
              + rng.uniform(-300, 300, n_features)).astype(np.float32)
    values[rng.random(values.shape) < 0.05] = np.nan
    values[:, :, 0] = 3.0  # a constant feature gets scale 1
    names = [f"f{i}" for i in range(n_features)]
    monkeypatch.setattr(mapped, "BLOCK_BYTES", 500 * n_features * 4 * 2)  # two series a block
    one, blocks = Scaler.fit(values, names), Scaler.fit_blocks(values, names)
    np.testing.assert_array_equal(blocks.mean, one.mean)
    np.testing.assert_array_equal(blocks.scale, one.scale)


def test_scaled_features_in_a_scratch_file_equal_those_in_memory(gappy_panel, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr(mapped, "BLOCK_BYTES", gappy_panel.values[:1].nbytes)  # one series
    scaler = Scaler.fit(gappy_panel.values[:, :200], gappy_panel.features)
    in_memory = scaled_filled(gappy_panel.values, scaler)
    on_disk = scaled_filled(gappy_panel.values, scaler, str(tmp_path))
    assert isinstance(on_disk, np.memmap) and not list(tmp_path.iterdir())  # unnamed file
    np.testing.assert_array_equal(on_disk, in_memory)
    np.testing.assert_array_equal(in_memory, fill_causal(scaler.transform(gappy_panel.values)))


# --- data.memmap: a Parquet file streamed into a memory-mapped panel --------------------------


def _parquet(path, n_steps=200, seed=0, shuffle=False, start="2022-03-01", zone=None,
             categories=None, infinite=False):
    """A long Parquet file: 3 stations, hourly, with gaps, a sentinel and wind directions; times
    in `zone` when given, the station a categorical with `categories` when given."""
    df = weather_frame(3, n_steps, {"temp": (10.0, 5.0)}, start=start, tz=zone, noise=1.0,
                       seed=seed, series_col="station", names=("st_c", "st_a", "st_b"))
    rng = np.random.default_rng(seed + 1)
    df["wind_dir"] = rng.uniform(0, 360, len(df))
    df["gusty"] = rng.random(len(df)) < 0.3
    df.loc[[5, 250, 251], "temp"] = -9999.0
    df.loc[[7, 8], "wind_dir"] = np.nan
    df = df.drop(index=[40, 41, 42, 300])  # missing steps
    if infinite:  # 1e308 is finite in float64, inf in the float32 panel
        df.loc[[60, 61, 400], "temp"] = [np.inf, -np.inf, 1e308]
    if categories:
        df["station"] = pd.Categorical(df["station"], categories=categories)
    if shuffle:
        df = df.sample(frac=1.0, random_state=0)
    df.to_parquet(path, index=False)
    return path


def _data(path, folder, **options) -> DataConfig:
    base = {"name": "csv", "path": str(path), "series_col": "station", "time_col": "time",
            "features": None, "freq": None, "tz": "UTC", "na_values": [-9999],
            "duplicates": "mean", "time_parts": None, "direction_cols": [], "trace_cols": [],
            "max_categories": 10, "thousands": None, "valid_range": {"temp": [-40, 60]},
            "memmap": None if folder is None else str(folder)}
    return loader.as_config({**base, **options})


def _in_memory(data: DataConfig):
    return to_panel(loader.load(dataclasses.replace(data, memmap=None)), data.freq)


@pytest.fixture(params=[None, 7], ids=["one_batch", "batches_of_7"])
def batch_rows(request, monkeypatch):
    """Record batches of the default size (the test files fit one), or of 7 rows: a series, a
    step and a repeated cell then span batches."""
    if request.param:
        monkeypatch.setattr(parquet_scan, "BATCH_ROWS", request.param)


CASES = {
    "sorted": ({}, {}),
    "shuffled": ({"shuffle": True}, {"freq": "h"}),
    "zoned": ({"start": "2022-03-12", "zone": "America/New_York"},  # across a DST change
              {"tz": "Europe/Berlin"}),
    "categorical": ({"categories": ["st_a", "st_b", "st_c", "st_zz"]}, {}),  # st_zz: no rows
    "infinite": ({"infinite": True}, {"valid_range": {}}),  # missing, not inf, either way
}


@pytest.mark.parametrize("case", list(CASES))
def test_memmap_panel_equals_the_panel_in_memory(tmp_path, batch_rows, case):
    file_options, options = CASES[case]
    path = _parquet(tmp_path / "obs.parquet", **file_options)
    data = _data(path, tmp_path / "maps", **options)
    mapped_panel, panel = largepanel.load(data, ["temp"], 30), _in_memory(data)
    assert isinstance(mapped_panel.values, np.memmap)
    assert mapped_panel.values.shape == panel.values.shape == (3, 200, 4)
    np.testing.assert_array_equal(mapped_panel.values, panel.values)
    assert np.isnan(panel.values).any() and not np.isinf(panel.values).any()
    np.testing.assert_array_equal(mapped_panel.ids, panel.ids)
    assert mapped_panel.times.equals(panel.times) and mapped_panel.times.dtype == panel.times.dtype
    assert (mapped_panel.features, mapped_panel.freq) == (panel.features, panel.freq)
    assert mapped_panel.features == ["temp", "wind_dir_sin", "wind_dir_cos", "gusty"]
    assert fingerprint(mapped_panel) == fingerprint(panel)


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_memmap_panel_is_reused_kept_per_option_and_rebuilt_when_the_file_changes(
        tmp_path, monkeypatch, batch_rows):
    path, maps = _parquet(tmp_path / "obs.parquet"), tmp_path / "maps"
    data = _data(path, maps)
    narrow = dataclasses.replace(data, valid_range={"temp": [-40, 12]})
    first = largepanel.load(data)
    files = _names(maps)
    assert len(files) == 2 and files[0].endswith(".f32") and files[1].endswith(".json")

    other = largepanel.load(narrow)  # another option: a panel beside the first
    np.testing.assert_array_equal(other.values, _in_memory(narrow).values)
    assert not np.array_equal(other.values, first.values, equal_nan=True)
    assert set(files) < set(_names(maps)) and len(_names(maps)) == 4

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although nothing changed")

    with monkeypatch.context() as m:  # a sweep alternating the options maps both again
        m.setattr(largepanel, "build", no_build)
        again, other_again = largepanel.load(data), largepanel.load(narrow)
    np.testing.assert_array_equal(again.values, first.values)
    np.testing.assert_array_equal(other_again.values, other.values)

    _parquet(path, seed=1)  # same shape and size, other values
    changed = largepanel.load(data)
    np.testing.assert_array_equal(changed.values, _in_memory(data).values)
    assert not np.array_equal(changed.values, first.values, equal_nan=True)
    assert len(_names(maps)) == 2 and not set(files) & set(_names(maps))  # both old ones gone


def test_memmap_runs_with_other_options_on_one_file_keep_each_others_panels(tmp_path,
                                                                            monkeypatch):
    path, maps = _parquet(tmp_path / "obs.parquet"), tmp_path / "maps"
    data, temp_only = _data(path, maps), _data(path, maps, features=["temp"])
    write_json = largepanel._write_json

    def and_another_run(obj, target):  # a parallel job builds between this one's write and use
        write_json(obj, target)
        if obj.get("features") != ["temp"]:
            largepanel.load(temp_only)

    monkeypatch.setattr(largepanel, "_write_json", and_another_run)
    panel = largepanel.load(data)
    np.testing.assert_array_equal(panel.values, _in_memory(data).values)
    assert len(_names(maps)) == 4


def test_memmap_leaves_files_it_did_not_write(tmp_path):
    path, maps = _parquet(tmp_path / "obs.parquet"), tmp_path / "maps"
    maps.mkdir()
    source = str(path.resolve())
    mine = {"obs-notes.json": "[1, 2]", "obs-0123456789abcdef.json": "[]",
            "obs-fedcba9876543210.json": json.dumps({"source": source, "shape": [3, 200, 4]}),
            "obs-fedcba9876543210.f32": "my data", "obs-2.json": "{"}
    for name, text in mine.items():
        (maps / name).write_text(text)
    largepanel.load(_data(path, maps))
    _parquet(path, seed=1)  # a changed file: its older panels are removed, nothing else
    largepanel.load(_data(path, maps))
    assert {name: (maps / name).read_text() for name in mine} == mine
    assert len(_names(maps)) == len(mine) + 2


def test_memmap_run_scores_as_the_run_in_memory(tmp_path):
    path = _parquet(tmp_path / "obs.parquet", n_steps=400)
    overrides = ["data=csv", f"data.path={path}", "data.series_col=station", "targets=[temp]",
                 "data.na_values=[-9999]", "lookback=24", "horizon=6", "trainer=fast",
                 "trainer.max_epochs=2", "threads=1"]
    with initialize_config_module("forecast.conf", version_base="1.3"):
        plain = compose("train", overrides=overrides)
        mapped_cfg = compose("train", overrides=[*overrides, f"data.memmap={tmp_path / 'maps'}"])
    scores = []
    for cfg, name in ((plain, "memory"), (mapped_cfg, "mapped")):
        train.run(cfg, tmp_path / name)
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        scores.append({k: metrics[k] for k in ("model", "baselines", "windows", "val_loss")})
    assert scores[0] == scores[1]
    prov = [json.loads((tmp_path / n / "provenance.json").read_text()) for n in ("memory",
                                                                                "mapped")]
    assert prov[0]["data_fingerprint"] == prov[1]["data_fingerprint"]


def test_memmap_refuses_what_it_cannot_stream(tmp_path):
    path = _parquet(tmp_path / "obs.parquet")
    maps = tmp_path / "maps"
    csv = tmp_path / "obs.csv"
    pd.read_parquet(path).to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"data.memmap needs data.path to be one Parquet file.*"
                                         r"obs.csv"):
        largepanel.load(_data(csv, maps))
    fake = tmp_path / "fake.parquet"
    fake.write_text("station,time,temp\n")
    with pytest.raises(ValueError, match=r"fake.parquet' is not a readable Parquet file.*"
                                         r"data.memmap needs a Parquet file"):
        largepanel.load(_data(fake, maps))
    with pytest.raises(ValueError, match=r"data.memmap cannot be combined with data.duplicates"):
        largepanel.load(_data(path, maps, duplicates="last"))
    with pytest.raises(ValueError, match=r"data.memmap cannot be combined with data.time_parts"):
        largepanel.load(_data(path, maps, time_parts=["date", "hour"]))
    with pytest.raises(ValueError, match=r"data.memmap cannot be combined with data.series_col"):
        largepanel.load(_data(path, maps, series_col=None))
    with pytest.raises(ValueError, match=r"obs.parquet: column\(s\) \['site'\] not found"):
        largepanel.load(_data(path, maps, series_col="site"))
    with pytest.raises(ValueError, match=r"data.features \['pressure'\] not found"):
        largepanel.load(_data(path, maps, features=["temp", "pressure"]))
    with pytest.raises(ValueError, match="target 'dew' is not a feature"):
        largepanel.load(_data(path, maps), targets=["dew"])
    with pytest.raises(ValueError, match=r"data.memmap reads a Parquet file of data=csv"):
        largepanel.load(_data(path, maps, name="nyc_weather"))
    assert not maps.exists()  # nothing built on the way


def test_memmap_refuses_text_columns_and_repeated_rows(tmp_path, batch_rows):
    df = pd.read_parquet(_parquet(tmp_path / "obs.parquet"))
    df.assign(sky=np.where(df["gusty"], "cloudy", "clear")).to_parquet(tmp_path / "text.parquet")
    with pytest.raises(ValueError, match=r"column 'sky' is (large_)?string, not numbers"):
        largepanel.load(_data(tmp_path / "text.parquet", tmp_path / "maps"))
    pd.concat([df, df.iloc[[3]]]).to_parquet(tmp_path / "twice.parquet")
    with pytest.raises(ValueError, match=r"repeat the \(series, time\).*'st_c' at 2022-03-01 "
                                         r"03:00.*data.memmap does not resolve duplicates"):
        largepanel.load(_data(tmp_path / "twice.parquet", tmp_path / "maps", freq="h"))
    assert not list((tmp_path / "maps").iterdir())  # the partial panel was removed


def test_memmap_without_a_step_names_the_file_and_data_freq(tmp_path):
    df = pd.read_parquet(_parquet(tmp_path / "obs.parquet"))
    df.groupby("station").head(1).to_parquet(tmp_path / "once.parquet")
    with pytest.raises(ValueError, match=r"once.parquet: cannot infer data.freq: every series has "
                                         r"a single time step; set data.freq"):
        largepanel.load(_data(tmp_path / "once.parquet", tmp_path / "maps"))


def test_memmap_folder_that_cannot_be_one_is_refused_before_the_file_is_read(tmp_path,
                                                                             monkeypatch):
    path = _parquet(tmp_path / "obs.parquet")
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")

    def no_scan(*args, **kwargs):
        raise AssertionError("the file was read before the folder was checked")

    monkeypatch.setattr(largepanel, "scan_grid", no_scan)
    for folder in (taken, taken / "maps"):
        with pytest.raises(ValueError, match=rf"data.memmap='{folder}' .*set data.memmap to a "
                                             r"folder"):
            largepanel.load(_data(path, folder))
    assert taken.read_text() == "a file, not a folder"
