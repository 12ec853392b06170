"""A class's first "aha", on a fresh cache: the app opened → Train → the Influence page's live charts, in Chromium
at 1280×720, beside the same training and the whole run on the command line. Target: the live charts within 12 s of
the app opening; the app's training no slower than the command line's × 1.2.

    python benchmarks/first_aha.py [--repeats 2]

Run it on an otherwise idle machine; every repeat starts the app and the CLI on caches of their own.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LIVE = ".st-key-delta_live .c-count svg"


def cli_run(cache: Path) -> dict:
    """``deltainf run`` cold: its wall time and its own train time."""
    out = cache.with_suffix(".json")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deltainf", "run", "--cache-dir", str(cache), "--quiet", "--json", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "train_s": json.loads(out.read_text())["timings"]["train_s"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_run(cache: Path) -> dict:
    """The app from its start: seconds to the Train button, to the trained Experiment page, to Influence's charts."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "DELTAINF_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            pg = browser.new_page(viewport={"width": 1280, "height": 720})
            pg.set_default_timeout(240_000)
            pg.goto(url)
            pg.wait_for_selector(".st-key-train button")
            opened = time.perf_counter() - start
            pg.click(".st-key-train button")
            pg.wait_for_selector(".st-key-poison_strip img")
            trained = time.perf_counter() - start
            said = pg.locator("text=/Model trained in [0-9.]+ s/").first.inner_text()
            pg.locator("[data-testid='stSidebarNav'] a", has_text="Influence").first.click()
            pg.wait_for_selector(LIVE)
            live = time.perf_counter() - start
            browser.close()
    finally:
        proc.terminate()
        proc.wait(15)
    app_train = float(re.search(r"trained in ([0-9.]+) s", said).group(1))
    return {"opened_s": opened, "trained_s": trained, "live_s": live, "app_train_s": app_train}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    for r in range(1, a.repeats + 1):
        with tempfile.TemporaryDirectory(prefix="aha-") as tmp:
            cli = cli_run(Path(tmp) / "cli")
            app = app_run(Path(tmp) / "app")
        aha, ratio = app["live_s"] - app["opened_s"], app["app_train_s"] / cli["train_s"]
        print(f"repeat {r}: from launch: app opened {app['opened_s']:.1f} s, trained {app['trained_s']:.1f} s, "
              f"live charts {app['live_s']:.1f} s | app opened → live charts {aha:.1f} s (target 12 s: "
              f"{aha / 12:.2f}×) | training: app {app['app_train_s']:.1f} s vs CLI {cli['train_s']:.1f} s "
              f"({ratio:.2f}×, target ≤ 1.2) | cold `deltainf run` {cli['wall_s']:.1f} s")


if __name__ == "__main__":
    main()
