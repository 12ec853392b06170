"""Browser end-to-end: ``streamlit run app.py`` driven in Debian's Chromium through Playwright.

Runs the built-in walk-through cold (train → pick → transforms → influence → unlearn), moves τ and
k and checks that the histograms and metrics follow, switches pages with everything cached, and
uploads a broken checkpoint and a non-image. Prints the timings:

    slider → update latency (ms), cold walk-through (s), cached page switches (s)

and saves a screenshot of every page under ``test-artifacts/``. The issue's budgets (≤ 60 s cold,
≤ 1 s per cached page switch, ≤ 150 ms per slider move) are asserted when
``DELTAINF_E2E_STRICT=1``; otherwise looser bounds that still catch a hang or a full-page rerun,
since a shared CI machine's load is not the app's doing. Skips when Chromium or Playwright is missing
(Playwright's own browser download is never used).
"""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
STRICT = os.environ.get("DELTAINF_E2E_STRICT") == "1"
#: (issue's budget, loose bound for shared machines)
COLD_S = 60.0 if STRICT else 400.0
SWITCH_S = 1.0 if STRICT else 5.0
SLIDER_MS = 150.0 if STRICT else 1000.0
SLOW = 240_000  # ms: a cold stage on a loaded 2-core machine

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not installed (Debian package 'chromium')", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

#: page title in the navigation → selector that exists only once that page has fully rendered
READY = {
    "Experiment": ".st-key-poison_strip img",
    "Test image": ".st-key-probabilities .main-svg",
    "Transformations": ".st-key-transform_grid img",
    "Influence": ".st-key-count_hist .main-svg",
    "Unlearn": ".st-key-before_after .main-svg",
    "Compare": ".st-key-compare_scatter .main-svg",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    cache = tmp_path_factory.mktemp("e2e-cache")  # cold: nothing computed yet
    log_path = tmp_path_factory.mktemp("e2e-log") / "streamlit.log"
    env = {**os.environ, "DELTAINF_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield {"url": url, "log": log_path}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(server):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.set_default_timeout(60_000)
        pg.goto(server["url"])
        pg.wait_for_selector("[data-testid='stApp']")
        yield pg
        browser.close()


def no_exception(pg) -> None:
    exc = pg.locator("[data-testid='stException']")
    assert exc.count() == 0, exc.first.inner_text()


def shot(pg, name: str) -> None:
    """Screenshot of the whole page (the main area scrolls inside the window, so grow the window)."""
    h = pg.evaluate("() => (document.querySelector('[data-testid=stMain]') || document.body).scrollHeight")
    pg.set_viewport_size({"width": 1400, "height": max(900, min(int(h) + 40, 6000))})
    pg.wait_for_timeout(300)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    pg.set_viewport_size({"width": 1400, "height": 900})


def goto(pg, title: str, timeout: float = 60_000) -> float:
    """Open a page from the navigation; seconds until it has rendered."""
    start = time.perf_counter()
    pg.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    pg.wait_for_selector(READY[title], timeout=timeout)
    return time.perf_counter() - start


def text(pg, selector: str) -> str:
    return pg.locator(selector).first.inner_text()


# In-page probe: time from the key press to the moment the metrics AND the watched charts show new content.
ARM_PROBE = """([charts]) => {
  const read = (sel) => { const el = document.querySelector(sel); return el ? el.textContent : ''; };
  const metrics0 = read('.st-key-live_metrics');
  const charts0 = charts.map(read);
  window.__t0 = null; window.__lat = null;
  document.addEventListener('keydown', () => { window.__t0 = performance.now(); }, {once: true, capture: true});
  const check = () => {
    if (window.__t0 === null || window.__lat !== null) return;
    if (read('.st-key-live_metrics') === metrics0) return;
    if (charts.some((sel, i) => read(sel + ' .main-svg') === '' || read(sel) === charts0[i])) return;
    window.__lat = performance.now() - window.__t0;
    obs.disconnect();
  };
  const obs = new MutationObserver(check);
  obs.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def move(pg, slider_key: str, key: str, charts: list[str]) -> float:
    """Press ``key`` on a slider; ms until metrics and ``charts`` have updated in the DOM."""
    pg.evaluate(ARM_PROBE, [charts])
    pg.locator(f".st-key-{slider_key} input[type=range]").press(key)
    pg.wait_for_function("window.__lat !== null", timeout=30_000)
    lat = pg.evaluate("window.__lat")
    pg.wait_for_timeout(150)  # let the fragment settle before the next move
    return float(lat)


def flagged(pg) -> str:
    return pg.locator(".st-key-live_metrics [data-testid='stMetricValue']").nth(2).inner_text()


def test_walkthrough_sliders_and_page_switches(page, server):
    pg = page
    # --- cold walk-through: train → pick → transforms → influence → unlearn
    pg.wait_for_selector(".st-key-train button")
    start = time.perf_counter()
    pg.click(".st-key-train button")
    pg.wait_for_selector(READY["Experiment"], timeout=SLOW)
    no_exception(pg)
    shot(pg, "1-experiment")

    goto(pg, "Test image", SLOW)
    no_exception(pg)
    current = text(pg, "[data-testid='stImageCaption']")
    choice = pg.locator("[class*='st-key-pick_'] button:not([disabled])").first
    picked = choice.evaluate("b => b.closest('[class*=\"st-key-pick_\"]').className.match(/st-key-pick_(\\d+)/)[1]")
    choice.click()
    pg.wait_for_selector(f"text=triggered test image #{picked}", timeout=SLOW)
    assert f"#{picked}" not in current
    pg.wait_for_selector(READY["Test image"])
    no_exception(pg)
    shot(pg, "2-test-image")

    goto(pg, "Transformations", SLOW)
    assert pg.locator(".st-key-transform_grid img").count() == 51  # the original + T = 50 copies
    no_exception(pg)
    shot(pg, "3-transformations")

    goto(pg, "Influence", SLOW)
    no_exception(pg)
    shot(pg, "4-influence")

    pg.locator("[data-testid='stSidebarNav'] a", has_text="Unlearn").first.click()
    pg.wait_for_selector(".st-key-run_unlearn button")
    pg.click(".st-key-run_unlearn button")
    pg.wait_for_selector(READY["Unlearn"], timeout=SLOW)
    cold = time.perf_counter() - start
    no_exception(pg)
    result = text(pg, ".st-key-unlearn_result")
    assert "Poison success" in result and "Removed" in result
    shot(pg, "5-unlearn")

    goto(pg, "Compare", SLOW)
    no_exception(pg)
    table = text(pg, ".st-key-compare_table")
    for name in ("delta_influence", "ekfac"):
        assert name in table
    shot(pg, "6-compare")

    # --- τ and k: the histograms and metrics follow, within one fragment rerun
    goto(pg, "Influence")
    before_hist = text(pg, ".st-key-count_hist")
    before_metrics = text(pg, ".st-key-live_metrics")
    tau_ms, k_ms, flagged_seen = [], [], {flagged(pg)}
    for _ in range(6):  # τ down in steps of 0.05 × scale
        tau_ms.append(move(pg, "tau_rel", "ArrowLeft", [".st-key-count_hist", ".st-key-delta_hist"]))
        flagged_seen.add(flagged(pg))
    for _ in range(4):  # k up by one
        k_ms.append(move(pg, "k", "ArrowRight", [".st-key-count_hist"]))
        flagged_seen.add(flagged(pg))
    no_exception(pg)
    assert text(pg, ".st-key-count_hist") != before_hist
    assert text(pg, ".st-key-live_metrics") != before_metrics
    assert len(flagged_seen) > 1, "moving τ and k never changed the number flagged"
    assert "k = 4" in text(pg, ".st-key-count_hist")
    shot(pg, "7-influence-after-sliders")

    # --- page switches with everything cached
    switches = {title: goto(pg, title) for title in ["Experiment", "Test image", "Transformations", "Influence",
                                                     "Compare", "Experiment"]}
    no_exception(pg)

    lat = tau_ms + k_ms
    print(f"\n[e2e] cold walk-through (train → pick → transforms → influence → unlearn): {cold:.1f} s")
    print(f"[e2e] slider → histogram + metrics update: median {statistics.median(lat):.0f} ms, "
          f"max {max(lat):.0f} ms (τ: {', '.join(f'{x:.0f}' for x in tau_ms)}; k: {', '.join(f'{x:.0f}' for x in k_ms)})")
    print("[e2e] cached page switches: " + ", ".join(f"{t} {s:.2f} s" for t, s in switches.items()))
    assert cold <= COLD_S, f"cold walk-through took {cold:.1f} s"
    assert max(switches.values()) <= SWITCH_S, switches
    assert statistics.median(lat) <= SLIDER_MS, lat


def test_bad_uploads_leave_the_experiment_alone(page):
    pg = page
    pg.locator("[data-testid='stSidebarNav'] a", has_text="Experiment").first.click()
    pg.wait_for_selector(READY["Experiment"])
    metrics = text(pg, "[data-testid='stHorizontalBlock']:has([data-testid='stMetric'])")
    sidebar = text(pg, "[data-testid='stSidebarUserContent']")
    pg.locator("[data-testid='stExpander'] summary", has_text="own weights").click()
    uploader = pg.locator(".st-key-weights_upload input[type=file]")
    uploader.set_input_files({"name": "broken.safetensors", "mimeType": "application/octet-stream",
                              "buffer": b"\x00\x01 this is not a checkpoint"})
    pg.wait_for_selector("text=neither a safetensors file nor a readable torch state dict")
    from safetensors.torch import save
    import torch

    foreign = save({"backbone.conv.weight": torch.zeros(4, 3, 3, 3)})
    uploader.set_input_files({"name": "foreign.safetensors", "mimeType": "application/octet-stream", "buffer": foreign})
    pg.wait_for_selector("text=does not fit this architecture")
    assert text(pg, "[data-testid='stHorizontalBlock']:has([data-testid='stMetric'])") == metrics
    assert "weights: trained here" in text(pg, "[data-testid='stSidebarUserContent']")
    no_exception(pg)

    goto(pg, "Test image")
    caption = text(pg, "[data-testid='stImageCaption']")
    pg.locator("[data-testid='stExpander'] summary", has_text="Upload your own").click()
    pg.locator(".st-key-query_upload input[type=file]").set_input_files(
        {"name": "notes.png", "mimeType": "image/png", "buffer": b"just some text, not a PNG"})
    pg.wait_for_selector("text=notes.png is not a readable image")
    assert text(pg, "[data-testid='stImageCaption']") == caption
    no_exception(pg)
    shot(pg, "8-bad-upload")
    assert text(pg, "[data-testid='stSidebarUserContent']").split("Cache")[0] == sidebar.split("Cache")[0]
