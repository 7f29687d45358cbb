"""The run page in a real headless browser (chromium): at 1280 px nothing runs off the right
edge, every image loads, and no 'NaN' is shown. Chromium is found, or installed where the tests
run as root with apt-get, else the test is skipped with the reason."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from forecast import config
from forecast.runs import train

WIDTH = 1280

# writes what the page looks like at the window's width into the DOM, which --dump-dom prints
MEASURE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const out = {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    images: imgs.length,
    imagesLoaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    nan: /NaN|\\bnan\\b|\\bNone\\b/.test(document.body.innerText),
    overflowing: Array.from(document.querySelectorAll("table, pre, img, h1, p"))
      .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
      .filter(e => !e.closest(".scroll")).map(e => e.tagName).slice(0, 10),
  };
  const node = document.createElement("pre");
  node.id = "measurements";
  node.textContent = JSON.stringify(out);
  document.body.appendChild(node);
});
</script>"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


@pytest.fixture(scope="session")
def chromium() -> str:
    found = _chromium()
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            subprocess.run("apt-get update -qq && apt-get install -y -qq chromium", shell=True,
                           check=True, capture_output=True, timeout=900)
        except (subprocess.SubprocessError, OSError) as error:
            reason = f"chromium is not installed and apt-get could not install it: {error}"
            print(reason)
            pytest.skip(reason)
        found = _chromium()
        if found:
            return found
    reason = "chromium not found (install it: apt-get install chromium) and not root to install"
    print(reason)
    pytest.skip(reason)


def measure(browser: str, report: Path, scratch: Path) -> dict:
    """The page's measurements in chromium headless at 1280 x 900 (a copy with MEASURE)."""
    copy = scratch / "measured.html"
    text = report.read_text()
    copy.write_text(text.replace("</body>", MEASURE + "</body>", 1))
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={scratch / 'profile'}",
         f"--window-size={WIDTH},900", "--virtual-time-budget=5000", "--dump-dom",
         copy.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="measurements">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"no measurements in chromium's DOM (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def interval_run(tmp_path_factory) -> Path:
    config.register()
    with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
        cfg = compose("train", overrides=["data=synthetic", "trainer=fast",
                                          "model.quantiles=[0.1,0.5,0.9]", "logger=csv"])
    run = tmp_path_factory.mktemp("browser") / "run"
    train.run(cfg, run)
    return run


@pytest.mark.slow
def test_run_page_fits_1280px_loads_its_images_and_shows_no_nan(chromium, interval_run,
                                                                 tmp_path):
    shown = measure(chromium, interval_run / "report.html", tmp_path)
    print("chromium measurements:", shown)
    assert shown["innerWidth"] == WIDTH
    assert shown["scrollWidth"] <= shown["innerWidth"], shown  # nothing off the right edge
    assert not shown["overflowing"], shown
    pngs = list((interval_run / "plots").glob("*.png"))
    assert shown["images"] == len(pngs) > 0 and shown["imagesLoaded"] == shown["images"], shown
    assert not shown["nan"], shown
