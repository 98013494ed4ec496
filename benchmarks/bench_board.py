"""How the board scales with the number of runs: build time, page size, and the time until a
headless Chromium has drawn every plot.

    python benchmarks/bench_board.py RUN_DIR --runs 1 10 50 [--repeat 3]

RUN_DIR is one real run (a quickstart folder: ``models/gammaphysnet/report.json`` and
``report_point/metrics.json``); its json files and θ² images are copied into N run folders
(the figures are then N overlaid copies: the cost is that of N real runs). Prints medians.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEEP = ("report.json", "metrics.json", "*.png", "*.log")


def make_runs(template, n, root):
    runs = []
    for i in range(n):
        target = root / f"run_{i:03d}"
        for pattern in KEEP:
            for path in template.rglob(pattern):
                if "cache" in path.parts or "tensorboard" in path.parts:
                    continue
                destination = target / path.relative_to(template)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)
        runs.append(target)
    return runs


def build(runs, output):
    board = Path(sys.executable).with_name("ctapipe-gammalearn-board")
    start = time.perf_counter()
    subprocess.run([str(board), *map(str, runs), f"--output={output}", "--overwrite", "--quiet"], check=True)
    return time.perf_counter() - start


def browser_ready_time(page):
    """Seconds until the page's script has drawn every figure (None without Chromium/selenium)."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        return None
    if not (chromium and driver_path):
        return None
    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        start = time.perf_counter()
        driver.get(page.as_uri())
        WebDriverWait(driver, 600).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
        return time.perf_counter() - start
    finally:
        driver.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("template", type=Path)
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'runs':>5} {'build [s]':>10} {'page [MB]':>10} {'browser [s]':>12}")
    for n in args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            runs = make_runs(args.template, n, Path(tmp))
            page = Path(tmp) / "board.html"
            builds = [build(runs, page) for _ in range(args.repeat)]
            loads = [browser_ready_time(page) for _ in range(args.repeat)]
            load = statistics.median(loads) if None not in loads else float("nan")
            print(f"{n:>5} {statistics.median(builds):>10.2f} {page.stat().st_size / 1e6:>10.2f} {load:>12.2f}")


if __name__ == "__main__":
    main()
