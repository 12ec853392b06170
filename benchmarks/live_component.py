"""The Influence page's live area in headless Chromium: payload size, first draw and key press → chart change, at
the built-in scale (1,438 × 50) and at CIFAR-10 scale (50,000 × 50), over a synthetic Δ through the same
component (``benchmarks/live_app.py``); beside it the minimal Streamlit fragment (tests/app/minimal_fragment.py).

    python benchmarks/live_component.py [--sizes 1438x50 50000x50] [--moves 20]

Targets (issue #15): median ≤ 100 ms and first draw ≤ 1 s at 50,000 × 50; ≤ 50 ms and ≤ 0.5 × the minimal
fragment at the built-in scale.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARM_PROBE = (ROOT / "tests" / "app" / "latency_probe.js").read_text()  # the browser test's probe
CHROMIUM, CHROMIUM_ARGS = "/usr/bin/chromium", ["--no-sandbox", "--disable-gpu"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(script: str, env: dict) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise SystemExit(f"streamlit did not start {script}")


def press(pg, control: str, key: str, watched: list[str], live: bool) -> float:
    pg.evaluate(ARM_PROBE, [live, watched])
    pg.locator(control).press(key)
    pg.wait_for_function("window.__lat !== null", timeout=60_000)
    lat = float(pg.evaluate("window.__lat"))
    pg.wait_for_timeout(40 if live else 250)
    return lat


def live_area(browser, n: int, t: int, moves: int) -> dict:
    proc, url = serve("benchmarks/live_app.py", {"LIVE_N": str(n), "LIVE_T": str(t)})
    try:
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.goto(url)
        pg.wait_for_selector(".st-key-delta_live .c-count svg", timeout=600_000)  # the server builds the payload once
        pg.reload()  # now time the page with the payload ready
        start = time.perf_counter()
        pg.wait_for_selector(".st-key-delta_live .c-count svg", timeout=120_000)
        load = time.perf_counter() - start
        first = float(pg.locator(".st-key-delta_live .live").get_attribute("data-first-draw-ms"))
        caption = pg.locator("[data-testid='stCaptionContainer']").first.inner_text()
        lat = []
        tau, k = ".st-key-delta_live .tau input", ".st-key-delta_live .k input"
        for j in range(moves):
            key = "ArrowLeft" if (j // 5) % 2 else "ArrowRight"
            if j % 2:
                lat.append(press(pg, tau, key, [".c-delta", ".tau output"], True))
            else:
                lat.append(press(pg, k, key, [".c-count", ".k output"], True))
        pg.close()
        return {"load": load, "first": first, "lat": lat, "caption": caption}
    finally:
        proc.terminate()


def minimal_fragment(browser, moves: int) -> list[float]:
    proc, url = serve("tests/app/minimal_fragment.py", {})
    try:
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.goto(url)
        pg.wait_for_selector(".st-key-bar .main-svg")
        lat = [press(pg, ".st-key-x input[type=range]", "ArrowRight", [".st-key-bar .main-svg"], False)
               for _ in range(moves)]
        pg.close()
        return lat
    finally:
        proc.terminate()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["1438x50", "50000x50"])
    ap.add_argument("--moves", type=int, default=20)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        base = statistics.median(minimal_fragment(browser, a.moves))
        print(f"minimal Streamlit fragment (slider + plotly bar): median {base:.0f} ms")
        for size in a.sizes:
            n, t = map(int, size.split("x"))
            r = live_area(browser, n, t, a.moves)
            med = statistics.median(r["lat"])
            print(f"{n} × {t}: {r['caption']}; first draw in the browser {r['first']:.0f} ms (decode, sort, draw), "
                  f"page load → charts {r['load']:.2f} s; key press → charts median {med:.1f} ms, "
                  f"max {max(r['lat']):.1f} ms; {med / base:.2f} × the minimal fragment")
        browser.close()


if __name__ == "__main__":
    main()
