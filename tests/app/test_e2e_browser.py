"""Browser end-to-end: ``streamlit run app.py`` driven in Debian's Chromium through Playwright.

Runs the built-in walk-through cold (train → pick → transforms → influence → unlearn), moves τ and
k and checks that the histograms and metrics follow, switches pages with everything cached, and
uploads a broken checkpoint and a non-image. Prints the timings:

    slider → update latency (ms), cold walk-through (s), cached page switches (s)

and saves a screenshot of every page under ``test-artifacts/`` (with ``DELTAINF_README_SHOTS=1`` also the
README's ``assets/influence.png`` and ``assets/unlearn.png``). The issue's budgets (≤ 60 s cold,
≤ 1 s per cached page switch, ≤ 150 ms per slider move) are asserted when
``DELTAINF_E2E_STRICT=1``; otherwise looser bounds that still catch a hang or a full-page rerun,
since a shared CI machine's load is not the app's doing. Skips when Chromium or Playwright is missing
(Playwright's own browser download is never used).
"""
from __future__ import annotations

import csv
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
STRICT = os.environ.get("DELTAINF_E2E_STRICT") == "1"
#: (issue's budget, loose bound for shared machines)
COLD_S = 60.0 if STRICT else 400.0
SWITCH_S = 1.0 if STRICT else 5.0
SLIDER_MS = 50.0 if STRICT else 500.0  # the live area computes in the browser: no server round trip
SLOW = 240_000  # ms: a cold stage on a loaded 2-core machine

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not installed (Debian package 'chromium')", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
pytestmark = pytest.mark.browser

PICKED: dict = {}  # the test image the walk-through picked (and so scored)

#: page title in the navigation → selector that exists only once that page has fully rendered
READY = {
    "Experiment": ".st-key-poison_strip img",
    "Test image": ".st-key-probabilities .main-svg",
    "Transformations": ".st-key-transform_grid img",
    "Influence": ".st-key-delta_live .c-count svg",
    "Unlearn": ".st-key-before_after .main-svg",
    "Compare": ".st-key-compare_scatter .main-svg",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run app.py`` on a free port with its own cache folder; can be restarted on the same cache."""

    def __init__(self, cache: Path, log_path: Path, env: dict | None = None, script: str = "app.py"):
        self.cache, self.log_path, self.proc, self.url, self.port = cache, log_path, None, None, None
        self.env, self.script = env or {}, script

    def start(self) -> None:
        port = self.port = _free_port()
        env = {**os.environ, "DELTAINF_CACHE_DIR": str(self.cache), "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", self.script, "--server.headless", "true", "--server.port",
                 str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                pytest.fail(f"streamlit did not come up:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.25)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def server(tmp_path_factory, user_case):
    # The user's case's folder may be read and model code run: whoever starts the app allows them.
    allowed = {"DELTAINF_ALLOWED_ROOTS": f"{user_case['base']}{os.pathsep}{ROOT / 'tests'}",
               "DELTAINF_ALLOW_MODEL_CODE": "1"}
    srv = Server(tmp_path_factory.mktemp("e2e-cache"), tmp_path_factory.mktemp("e2e-log") / "streamlit.log", allowed)
    srv.start()  # cold: nothing computed yet
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    pg.set_default_timeout(60_000)
    pg.goto(server.url)
    pg.wait_for_selector("[data-testid='stApp']")
    yield pg
    pg.close()


@contextmanager
def shot_on_failure(pg, name: str):
    try:
        yield
    except BaseException:
        pg.screenshot(path=str(ARTIFACTS / f"failed-{name}.png"), full_page=True)
        raise


def no_exception(pg) -> None:
    exc = pg.locator("[data-testid='stException']")
    assert exc.count() == 0, exc.first.inner_text()


def shot(pg, name: str, width: int = 1400, height: int = 900) -> None:
    """Screenshot of the whole page (the main area scrolls inside the window, so grow the window)."""
    pg.set_viewport_size({"width": width, "height": height})
    pg.wait_for_timeout(300)
    h = pg.evaluate("() => (document.querySelector('[data-testid=stMain]') || document.body).scrollHeight")
    pg.set_viewport_size({"width": width, "height": max(height, min(int(h) + 40, 6000))})
    pg.wait_for_timeout(300)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    pg.set_viewport_size({"width": 1400, "height": 900})


def readme_shot(pg, name: str, height: int) -> None:
    """With DELTAINF_README_SHOTS=1, refresh the README's screenshot assets/<name>.png (top of the page)."""
    if os.environ.get("DELTAINF_README_SHOTS") == "1":
        pg.set_viewport_size({"width": 1400, "height": height})
        pg.wait_for_timeout(500)
        pg.screenshot(path=str(ROOT / "assets" / f"{name}.png"))
        pg.set_viewport_size({"width": 1400, "height": 900})


def screens(pg, when: str) -> None:
    """Every page, whole, at a projector's 1280×720 and a laptop's 1400×1000: test-artifacts/screen-*.png."""
    for w, h in ((1280, 720), (1400, 1000)):
        for title in READY:
            pg.set_viewport_size({"width": w, "height": h})
            goto(pg, title)
            shot(pg, f"screen-{when}-{w}x{h}-{title.replace(' ', '-').lower()}", w, h)
    no_exception(pg)


def goto(pg, title: str, timeout: float = 60_000) -> float:
    """Open a page from the navigation; seconds until it has rendered."""
    start = time.perf_counter()
    pg.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    pg.wait_for_selector(READY[title], timeout=timeout)
    return time.perf_counter() - start


WATCH_CHANGES = """() => {
  window.__last = performance.now();
  window.__watch && window.__watch.disconnect();
  window.__watch = new MutationObserver(() => { window.__last = performance.now(); });
  window.__watch.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
  return performance.now();
}"""


def goto_settled(pg, title: str, quiet_ms: int = 500) -> float:
    """Open a page; seconds from the click until the page stopped changing (no DOM change for ``quiet_ms``)."""
    t0 = pg.evaluate(WATCH_CHANGES)
    pg.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    pg.wait_for_selector(READY[title])
    pg.wait_for_function(f"performance.now() - window.__last > {quiet_ms}", polling=100, timeout=60_000)
    return (pg.evaluate("window.__last") - t0) / 1000


def text(pg, selector: str) -> str:
    return pg.locator(selector).first.text_content() or ""


def sidebar(pg) -> str:
    """The sidebar's text once drawn: it is drawn after the page, so a page can be ready before it."""
    pg.wait_for_selector("[data-testid='stSidebarUserContent'] h4:has-text('Device')")  # its last heading
    # The heading survives from the page before: wait for the rerun to end and the text to hold still.
    pg.wait_for_function(SIDEBAR_SETTLED, polling=250, timeout=30_000)
    return text(pg, "[data-testid='stSidebarUserContent']")


SIDEBAR_SETTLED = """() => {
  const running = document.querySelector("[data-testid^='stStatusWidgetRunning']")
    || document.querySelector("[data-testid='stSidebarUserContent'] [data-stale='true']");
  const now = (document.querySelector("[data-testid='stSidebarUserContent']") || {}).textContent;
  const settled = !running && now === window.__sidebarText;
  window.__sidebarText = now;
  return settled;
}"""


ARM_PROBE = (Path(__file__).parent / "latency_probe.js").read_text()

LIVE = ".st-key-delta_live"


def move(pg, control: str, key: str, watched: list[str], live: bool = True, settle_ms: int = 60) -> float:
    """Press ``key`` on ``control``; ms until every ``watched`` selector's text has changed."""
    pg.evaluate(ARM_PROBE, [live, watched])
    pg.locator(control).press(key)
    pg.wait_for_function("window.__lat !== null", timeout=30_000)
    lat = pg.evaluate("window.__lat")
    pg.wait_for_timeout(settle_ms)
    return float(lat)


def set_range(pg, control: str, value: int) -> None:
    """Drag a range input to ``value`` (as a mouse would, one input event)."""
    pg.locator(control).evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
                                 value)


def live_text(pg, part: str) -> str:
    return pg.locator(f"{LIVE} {part}").first.text_content() or ""


def card(pg, name: str) -> str:
    """A metric card's value in the live area."""
    return pg.locator(f"{LIVE} .card", has_text=name).first.locator("b").inner_text()


def minimal_fragment_latency(browser, moves: int = 8) -> list[float]:
    """The smallest Streamlit round trip: one slider and one plotly bar chart in a fragment (tests/app/
    minimal_fragment.py), measured the same way as the live area."""
    import tempfile

    tmp = Path(tempfile.mkdtemp())
    srv = Server(tmp, tmp / "minimal.log", script="tests/app/minimal_fragment.py")
    srv.start()
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        pg.goto(srv.url)
        pg.wait_for_selector(".st-key-bar .main-svg")
        return [move(pg, ".st-key-x input[type=range]", "ArrowRight", [".st-key-bar .main-svg"], live=False,
                     settle_ms=250) for _ in range(moves)]
    finally:
        pg.close()
        srv.stop()


def test_walkthrough_sliders_and_page_switches(page):
    with shot_on_failure(page, "walkthrough"):
        walkthrough(page)


def walkthrough(pg):
    # --- cold walk-through: train → pick → transforms → influence → unlearn
    pg.wait_for_selector(".st-key-train button")
    start = time.perf_counter()
    steps, paused = {}, [0.0]

    def step(name):  # seconds of this step, screenshots excluded
        steps[name] = time.perf_counter() - start - paused[0] - sum(steps.values())

    def snap(name):
        t = time.perf_counter()
        shot(pg, name)
        paused[0] += time.perf_counter() - t

    pg.click(".st-key-train button")
    pg.wait_for_selector(READY["Experiment"], timeout=SLOW)
    step("train")
    no_exception(pg)
    snap("1-experiment")

    goto(pg, "Test image", SLOW)
    no_exception(pg)
    current = text(pg, "[data-testid='stImageCaption']")
    choice = pg.locator("[class*='st-key-pick_'] button:not([disabled])").first
    picked = choice.evaluate("b => b.closest('[class*=\"st-key-pick_\"]').className.match(/st-key-pick_(\\d+)/)[1]")
    choice.click()
    PICKED["index"] = int(picked)
    pg.wait_for_selector(f"text=triggered test image #{picked}", timeout=SLOW)
    assert f"#{picked}" not in current
    pg.wait_for_selector(READY["Test image"])
    step("pick")
    no_exception(pg)
    snap("2-test-image")

    goto(pg, "Transformations", SLOW)
    step("transforms")
    assert pg.locator(".st-key-transform_grid img").count() == 51  # the original + T = 50 copies
    no_exception(pg)
    snap("3-transformations")

    goto(pg, "Influence", SLOW)
    step("influence")
    no_exception(pg)
    pg.wait_for_selector(".st-key-verdict >> text=Verdict: POISONED", timeout=SLOW)  # the verdict's headline
    snap("4-influence")
    readme_shot(pg, "influence", 1250)

    pg.locator("[data-testid='stSidebarNav'] a", has_text="Unlearn").first.click()
    pg.wait_for_selector(".st-key-run_unlearn button")
    pg.click(".st-key-run_unlearn button")
    pg.wait_for_selector(READY["Unlearn"], timeout=SLOW)
    step("unlearn")
    cold = time.perf_counter() - start - paused[0]
    no_exception(pg)
    result = text(pg, ".st-key-unlearn_result")
    assert "Poison success" in result and "Removed" in result
    shot(pg, "5-unlearn")
    readme_shot(pg, "unlearn", 1000)

    goto(pg, "Compare", SLOW)
    no_exception(pg)
    for name in ("delta_influence", "ekfac"):  # one row per registered detector
        pg.wait_for_selector(f".st-key-compare_table td >> text={name}")
    pg.wait_for_selector(".st-key-compare_table td >> text=current suspect set")  # the Influence page's set first
    assert "suspect set:" in sidebar(pg) and "the τ/k rule at τ =" in sidebar(pg)  # and in the sidebar
    shot(pg, "6-compare")

    # --- τ and k: the live area recomputes in the browser; the server hears of it once the user settles
    goto(pg, "Influence")
    tau_in, k_in = f"{LIVE} .tau input[type=range]", f"{LIVE} .k input[type=range]"
    tau0, k0 = int(pg.locator(tau_in).input_value()), int(pg.locator(k_in).input_value())  # the suggestion
    before = live_text(pg, ".c-count"), card(pg, "Flagged")
    tau_key = "ArrowLeft" if tau0 > 10 else "ArrowRight"
    tau_ms, k_ms, flagged_seen = [], [], {card(pg, "Flagged")}
    for _ in range(6):  # τ in steps of 0.05 × scale
        tau_ms.append(move(pg, tau_in, tau_key, [".c-delta", ".c-curve", ".tau output"]))
        flagged_seen.add(card(pg, "Flagged"))
    for _ in range(4):  # k up by one
        k_ms.append(move(pg, k_in, "ArrowRight", [".c-count", ".c-curve", ".k output"]))
        flagged_seen.add(card(pg, "Flagged"))
    no_exception(pg)
    assert int(pg.locator(tau_in).input_value()) == tau0 + (-6 if tau_key == "ArrowLeft" else 6)
    assert int(pg.locator(k_in).input_value()) == k0 + 4
    assert live_text(pg, ".c-count") != before[0]
    assert f"T − k = 50 − {k0 + 4}" in live_text(pg, ".c-count")
    assert len(flagged_seen) > 1, "moving τ and k never changed the number flagged"
    # once settled, the server redraws what needs it at the same τ/k: the count it gives is the browser's
    pg.wait_for_selector(f"text={card(pg, 'Flagged')} flagged", timeout=30_000)
    pg.wait_for_selector(f"text=, k = {k0 + 4} (chosen)")
    shot(pg, "7-influence-after-sliders")
    baseline = minimal_fragment_latency(pg.context.browser)

    # --- a permissive rule shows its false positives: τ = +2 × scale, k = 5
    box = pg.locator(f"{LIVE} .live")
    lo, step = float(box.get_attribute("data-lo")), float(box.get_attribute("data-step"))
    set_range(pg, tau_in, round((2.0 - lo) / step))
    set_range(pg, k_in, 5)
    assert "+2.00 × scale" in live_text(pg, ".tau output")
    clean = int(card(pg, "Clean flagged"))
    assert clean > 0, "τ = +2 × scale flags no clean point"
    pg.wait_for_selector(f"text=Clean points flagged (false positives): {clean}", timeout=30_000)
    strip = pg.locator("[data-testid='stHtml']", has_text="Clean points flagged")
    assert strip.locator("img").count() == min(clean, 16)

    # --- a projector: the sliders and both main charts on one 1280×720 screen
    pg.set_viewport_size({"width": 1280, "height": 720})
    pg.wait_for_timeout(500)
    for part in (tau_in, k_in, f"{LIVE} .c-delta svg", f"{LIVE} .c-count svg"):
        b = pg.locator(part).bounding_box()
        assert b is not None and b["y"] >= 0 and b["y"] + b["height"] <= 720, (part, b)
    if os.environ.get("DELTAINF_README_SHOTS") == "1":
        pg.screenshot(path=str(ROOT / "assets" / "influence_projector.png"))
    pg.set_viewport_size({"width": 1400, "height": 900})

    # --- page switches with everything cached
    switches = {title: goto_settled(pg, title) for title in ["Experiment", "Test image", "Transformations",
                                                             "Influence", "Unlearn", "Compare", "Experiment"]}
    no_exception(pg)

    goto(pg, "Influence")
    pg.locator(".st-key-show_multiples label").click()  # every copy at a glance, in the screenshots below
    pg.wait_for_selector(".st-key-small_multiples .main-svg")
    pg.locator(".st-key-det_rule button", has_text="Δ refined").click()  # the second rule, in the screenshots too
    pg.get_by_text("Kept by the refinement").wait_for(timeout=SLOW)
    screens(pg, "walkthrough")

    lat = tau_ms + k_ms
    base = statistics.median(baseline)
    print(f"\n[e2e] cold walk-through (train → pick → transforms → influence → unlearn): {cold:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in steps.items())})")
    print(f"[e2e] key press → live charts + metrics: median {statistics.median(lat):.1f} ms, max {max(lat):.1f} ms "
          f"(τ: {', '.join(f'{x:.1f}' for x in tau_ms)}; k: {', '.join(f'{x:.1f}' for x in k_ms)}); the minimal "
          f"Streamlit fragment (slider + plotly bar) in the same run: median {base:.0f} ms "
          f"({', '.join(f'{x:.0f}' for x in baseline)}); ratio {statistics.median(lat) / base:.2f}")
    print("[e2e] cached page switches, click → the page stops changing: "
          + ", ".join(f"{t} {s:.2f} s" for t, s in switches.items()))
    assert cold <= COLD_S, f"cold walk-through took {cold:.1f} s"
    assert max(switches.values()) <= SWITCH_S, switches
    assert statistics.median(lat) <= SLIDER_MS, lat


def test_bad_uploads_leave_the_experiment_alone(page):
    with shot_on_failure(page, "uploads"):
        bad_uploads(page)


def bad_uploads(pg):
    pg.locator("[data-testid='stSidebarNav'] a", has_text="Experiment").first.click()
    pg.wait_for_selector(READY["Experiment"])
    metrics = text(pg, "[data-testid='stHorizontalBlock']:has([data-testid='stMetric'])")
    before = sidebar(pg)
    pg.locator("[data-testid='stExpander'] summary", has_text="own weights").click()
    uploader = pg.locator(".st-key-weights_upload input[type=file]")
    uploader.set_input_files({"name": "broken.safetensors", "mimeType": "application/octet-stream",
                              "buffer": b"\x00\x01 this is not a checkpoint"})
    # The check queues behind any engine job still running (e.g. Compare's detectors): allow for it.
    pg.wait_for_selector("text=neither a safetensors file nor a readable torch state dict", timeout=SLOW)
    from safetensors.torch import save
    import torch

    foreign = save({"backbone.conv.weight": torch.zeros(4, 3, 3, 3)})
    uploader.set_input_files({"name": "foreign.safetensors", "mimeType": "application/octet-stream", "buffer": foreign})
    pg.wait_for_selector("text=does not fit this architecture", timeout=SLOW)
    assert text(pg, "[data-testid='stHorizontalBlock']:has([data-testid='stMetric'])") == metrics
    assert "weights: trained here" in sidebar(pg)
    no_exception(pg)

    goto(pg, "Test image")
    caption = text(pg, "[data-testid='stImageCaption']")
    pg.locator("[data-testid='stExpander'] summary", has_text="Upload your own").click()
    pg.locator(".st-key-query_upload input[type=file]").set_input_files(
        {"name": "notes.png", "mimeType": "image/png", "buffer": b"just some text, not a PNG"})
    pg.wait_for_selector("text=notes.png is not a readable image", timeout=SLOW)
    assert text(pg, "[data-testid='stImageCaption']") == caption
    pg.locator(".st-key-query_upload input[type=file]").set_input_files(  # any type reaches the server's check
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"a text file"})
    pg.wait_for_selector("text=notes.txt is not a readable image", timeout=SLOW)
    no_exception(pg)
    shot(pg, "8-bad-upload")
    assert sidebar(pg).split("Cache")[0] == before.split("Cache")[0]


def test_a_bad_folder_keeps_the_experiment_and_controls_keep_their_values(page):
    with shot_on_failure(page, "bad-folder"):
        bad_folder(page)


def bad_folder(pg):
    # Unlearn's choices survive a trip to another page.
    goto(pg, "Unlearn")
    result = text(pg, ".st-key-unlearn_result")
    pg.locator(".st-key-unlearn_methods input").click()
    pg.locator("[role='option']", has_text="CF").first.click()
    pg.keyboard.press("Escape")
    pg.locator(".st-key-until_clean label").click()
    pg.wait_for_selector("text=not the choice above")  # the results on screen are the last run's, and say so
    pg.wait_for_selector(".st-key-escalate input:not([disabled])")  # the toggle's rerun is done
    assert pg.locator(".st-key-until_clean input[type=checkbox]").is_checked()
    goto(pg, "Influence")
    goto(pg, "Unlearn")
    methods = text(pg, ".st-key-unlearn_methods")
    assert "EU" in methods and "CF" in methods, methods
    assert pg.locator(".st-key-until_clean input[type=checkbox]").is_checked()
    assert text(pg, ".st-key-unlearn_result") == result
    pg.click(".st-key-run_unlearn button")  # EU and CF until clean: the rounds chart, for the screenshots
    pg.wait_for_selector(".st-key-rounds .main-svg", timeout=SLOW)
    result = text(pg, ".st-key-unlearn_result")
    screens(pg, "loop")

    # A data folder that does not exist: one message, in the app's words, and nothing lost.
    goto(pg, "Experiment")
    before = sidebar(pg)
    metrics = text(pg, "[data-testid='stHorizontalBlock']:has([data-testid='stMetric'])")
    pg.locator(".st-key-dataset").click()
    pg.locator("[role='option']", has_text="ImageFolder").first.click()
    pg.locator(".st-key-data_root input").fill(str(ROOT / "tests" / "no" / "such" / "folder"))
    pg.click(".st-key-train button")
    pg.wait_for_selector("text=does not exist", timeout=SLOW)
    said = [m for m in pg.locator("[data-testid='stAlertContentError']").all_inner_texts() if "does not exist" in m]
    assert len(said) == 1 and "Nothing changed" in said[0], said
    assert "--" not in said[0]  # no command-line flag in the app
    shot(pg, "12-bad-folder")
    assert sidebar(pg).split("Cache")[0] == before.split("Cache")[0]
    assert text(pg, "[data-testid='stHorizontalBlock']:has([data-testid='stMetric'])") == metrics
    goto(pg, "Influence")
    no_exception(pg)
    goto(pg, "Unlearn")
    assert text(pg, ".st-key-unlearn_result") == result
    no_exception(pg)


def test_a_restarted_server_keeps_everything_computed(server, browser):
    """After the walk-through, a new server process on the same cache serves the model and the scores without
    recomputing them."""
    if "index" not in PICKED:
        pytest.skip("needs the walk-through test's cache")
    server.stop()
    server.start()
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    pg.set_default_timeout(60_000)
    with shot_on_failure(pg, "restart"):
        pg.goto(server.url)
        pg.wait_for_selector(".st-key-train button")
        start = time.perf_counter()
        pg.click(".st-key-train button")
        pg.wait_for_selector(READY["Experiment"])
        pg.wait_for_selector("text=Model loaded from the cache")
        goto(pg, "Test image")
        pg.click(f".st-key-pick_{PICKED['index']} button")  # the test image the walk-through scored
        pg.wait_for_selector(f"text=triggered test image #{PICKED['index']}")
        goto(pg, "Influence")
        elapsed = time.perf_counter() - start
        no_exception(pg)
        print(f"\n[e2e] after a restart: train → pick → Influence from the cache in {elapsed:.1f} s")
        assert elapsed < (10.0 if STRICT else 60.0)
    pg.close()


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at ``port`` (read from /proc/net/tcp and tcp6)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                out.add(address)
    return out


def test_the_app_answers_on_this_machine_only(server):
    """`.streamlit/config.toml` binds the server to 127.0.0.1: it reads folders and may run model code."""
    addresses = listening_addresses(server.port)
    assert addresses and addresses <= {"0100007F", "00000000000000000000000001000000"}, addresses


def test_investigate_a_model_in_the_browser(server, browser, user_case, tmp_path):
    pg = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    pg.set_default_timeout(60_000)
    with shot_on_failure(pg, "investigate"):
        pg.goto(server.url)
        pg.wait_for_selector(".st-key-train button")
        investigate(pg, user_case, tmp_path)
    pg.close()


def review_file(pg, row: int) -> str:
    """The file of the review table's row ``row`` (the grid's accessible copy of its cells; the file is column 1)."""
    return pg.locator(f".st-key-review_table #glide-cell-1-{row}").inner_text().strip()


def set_review_status(pg, row: int, status: str) -> None:
    """Mark row ``row`` of the review table: open its status cell (the last column; rows of 35 px under a 35-px
    header) and choose ``status``."""
    grid = pg.locator(".st-key-review_table [data-testid='stDataFrame']")
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    x, y = box["x"] + box["width"] - 30, box["y"] + 35 + 35 * row + 17
    pg.mouse.dblclick(x, y)
    pg.wait_for_timeout(300)
    if not pg.get_by_role("option", name=status).count():  # the editor opened closed
        pg.mouse.click(x, y)
    pg.get_by_role("option", name=status).click()
    pg.wait_for_function(f"() => (document.querySelector('.st-key-review_table #glide-cell-7-{row}') || {{}})"
                         f".innerText === '{status}'", timeout=30_000)


def click_until(pg, button: str, shown: str, tries: int = 3) -> None:
    """Click ``button`` once the app is idle until ``shown`` appears: a click that lands while the grid's last edit
    is still rerunning the page can be lost (the grid and the button both trigger a rerun)."""
    for attempt in range(tries):
        pg.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=SLOW)
        pg.click(button)
        try:
            pg.wait_for_selector(shown, timeout=20_000)
            return
        except sync_api.TimeoutError:
            if attempt == tries - 1:
                raise


def download_rows(pg, path: Path, button: str = ".st-key-flagged_csv button", expander: str | None = None) -> list:
    """The rows of a CSV the page hands out (``expander``: the title of the expander to open first)."""
    if expander:
        pg.locator("[data-testid='stExpander'] summary", has_text=expander).first.click()
    return list(csv.DictReader(download(pg, button, path).open()))


def download(pg, button: str, path: Path, tries: int = 3) -> Path:
    """The file ``button`` hands out, saved at ``path``. Clicked once the app is idle, again if the click landed in a
    rerun (a background job finishing reruns the page) and was lost."""
    for attempt in range(tries):
        pg.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=SLOW)
        try:
            with pg.expect_download(timeout=30_000) as file:
                pg.click(button)
            file.value.save_as(path)
            return path
        except sync_api.TimeoutError:
            if attempt == tries - 1:
                raise


def investigate(pg, user_case, tmp_path):
    pg.locator(".st-key-start button", has_text="Investigate a model").click()
    pg.wait_for_selector(".st-key-investigate button")
    pg.locator(".st-key-case_root input").fill(str(user_case["root"]))
    pg.locator(".st-key-case_model_kind label", has_text="your own code").click()
    pg.wait_for_selector(".st-key-case_code input")
    pg.locator(".st-key-case_code input").fill(str(ROOT / "tests" / "case" / "user_model.py") + ":build")
    pg.locator(".st-key-case_image_size input").fill("16")
    pg.locator(".st-key-case_weights_upload input[type=file]").set_input_files(str(user_case["weights"]))
    pg.locator(".st-key-case_query_upload input[type=file]").set_input_files(str(user_case["query"]))
    for key, file in (("case_weights_upload", "weights"), ("case_query_upload", "query")):  # a submit during an
        pg.wait_for_selector(f".st-key-{key} >> text={Path(user_case[file]).name}")     # upload is lost
    pg.wait_for_selector(".st-key-investigate button:not([disabled])")
    # A refusal at a projector's 1280×720 (model code that is not there): in view, wherever the button sat.
    pg.set_viewport_size({"width": 1280, "height": 720})
    pg.locator(".st-key-case_code input").fill(str(ROOT / "tests" / "case" / "no_such_model.py") + ":build")
    pg.locator(".st-key-case_code input").press("Tab")
    pg.click(".st-key-investigate button")
    toast = pg.locator("[data-testid='stToast']").first
    toast.wait_for(timeout=SLOW)
    box = toast.bounding_box()
    assert "no_such_model" in toast.inner_text() and box["y"] >= 0 and box["y"] + box["height"] <= 720, box
    pg.set_viewport_size({"width": 1400, "height": 900})
    pg.locator(".st-key-case_code input").fill(str(ROOT / "tests" / "case" / "user_model.py") + ":build")
    pg.locator(".st-key-case_code input").press("Tab")
    pg.wait_for_selector(".st-key-investigate button:not([disabled])")
    pg.click(".st-key-investigate button")
    pg.wait_for_selector(".st-key-case_prediction .main-svg", timeout=SLOW)
    no_exception(pg)
    assert "Your model and data" in sidebar(pg)
    shot(pg, "9-investigate")
    goto(pg, "Influence", SLOW)
    no_exception(pg)
    pg.wait_for_selector(".st-key-review_table [data-testid='stDataFrame']")  # the review table of the flagged files
    pg.wait_for_selector(".st-key-verdict >> text=Verdict: POISONED", timeout=SLOW)
    shot(pg, "10-investigate-influence")
    # Δ refined, then the review: the two images with most drops dismissed, the others confirmed.
    pg.locator(".st-key-det_rule button", has_text="Δ refined").click()
    pg.wait_for_selector(".st-key-refined_steps", timeout=SLOW)
    caption = pg.locator("text=/\\d+ flagged by Δ refined at τ/").first
    caption.wait_for(timeout=SLOW)
    n = int(caption.inner_text().split()[0])
    dismissed = {review_file(pg, row) for row in (0, 1)}
    for row in (0, 1):
        set_review_status(pg, row, "dismissed")
    pg.wait_for_selector("text=0 confirmed · 2 dismissed")  # the marks reached the server
    click_until(pg, ".st-key-review_confirm_all button", f"text={n - 2} confirmed · 2 dismissed")
    flagged_csv = download_rows(pg, tmp_path / "influence.csv", expander="The flagged set")
    assert len(flagged_csv) == n and {r["path"] for r in flagged_csv if r["review"] == "dismissed"} == dismissed
    assert sum(r["review"] == "confirmed" for r in flagged_csv) == n - 2
    # Another test image, then this one again: the analyst's model and weights stay; the marks come back.
    other = tmp_path / "other.png"
    Image.fromarray(user_case["triggered"][1].transpose(1, 2, 0)).save(other)
    for query in (other, user_case["query"]):
        pg.locator("[data-testid='stSidebarNav'] a", has_text="Experiment").first.click()
        pg.wait_for_selector(".st-key-case_query_upload")
        pg.locator(".st-key-case_query_upload input[type=file]").set_input_files(str(query))
        pg.wait_for_selector(f".st-key-case_query_upload >> text={Path(query).name}")
        pg.wait_for_selector(".st-key-investigate button:not([disabled])")
        pg.click(".st-key-investigate button")
        pg.wait_for_selector(f"[data-testid='stSidebarUserContent'] >> text=test image: uploaded {Path(query).name}",
                             timeout=SLOW)
        pg.wait_for_selector(".st-key-case_prediction .main-svg", timeout=SLOW)
        assert f"weights: uploaded {Path(user_case['weights']).name}" in sidebar(pg)  # never "trained here"
    goto(pg, "Influence", SLOW)
    pg.wait_for_selector(f"text={n - 2} confirmed · 2 dismissed", timeout=SLOW)
    pg.locator("[data-testid='stSidebarNav'] a", has_text="Unlearn").first.click()
    pg.wait_for_selector(".st-key-run_unlearn button")
    chosen = pg.locator(".st-key-unlearn_source").evaluate(
        "e => e.innerText + ' ' + [...e.querySelectorAll('input')].map(i => i.value).join(' ')")
    assert f"the {n - 2} images confirmed" in chosen, chosen  # the Unlearn page's default
    pg.click(".st-key-run_unlearn button")
    pg.wait_for_selector(READY["Unlearn"], timeout=SLOW)
    no_exception(pg)
    result = text(pg, ".st-key-unlearn_result")
    assert "Test image" in result and "Poison success" not in result  # no ground truth here
    assert "Removed" in result and str(n - 2) in result
    unlearned = download_rows(pg, tmp_path / "unlearn.csv", button=".st-key-download_flagged button")
    assert {r["path"] for r in unlearned} == {r["path"] for r in flagged_csv if r["review"] == "confirmed"}
    report = download(pg, ".st-key-download_report button", tmp_path / "report.html")
    page = report.read_text()
    kept = page.split("Dismissed by the analyst")[1]
    assert f"{n - 2} confirmed, 2 dismissed" in page and all(f in kept for f in dismissed)
    assert f"<td>EU</td><td>{n - 2}</td>" in page
    shot(pg, "11-investigate-unlearn")
    # The report opens offline: every request leaving the file is refused, and its charts still draw.
    context = pg.context.browser.new_context()
    offline = context.new_page()
    requests = []
    offline.route("**/*", lambda route: (requests.append(route.request.url), route.abort())
                  if not route.request.url.startswith(("file:", "data:")) else route.continue_())
    assert "The verdict" in report.read_text() and "Poisoned" in report.read_text()
    offline.goto(report.as_uri())
    offline.wait_for_selector(".main-svg", timeout=30_000)
    assert requests == [] and offline.locator("img").count() > 10
    context.close()
