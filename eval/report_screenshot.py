"""The README's report screenshot, and how long reports take to make and to open.

    python eval/report_screenshot.py [--tag val_beam10_ln0.5] [--open-images 5000]

1. Runs ``captionkit report`` on the Flickr8k dev captions of the 6-member ensemble
   (``eval/results/flickr8k_ensemble/captions_<tag>.json``, its scores file, the dev references, the
   training captions, thumbnails from ``../shared/data/flickr8k/images``) and times it (wall and CPU:
   the machine is shared, so CPU seconds say more than wall seconds).
2. Opens the page in headless Chromium (Debian's ``chromium`` + ``chromedriver``), times the load
   (navigation start to the load event, from the browser's own Navigation Timing, and to the first
   thumbnail decoded; least and median of 5 loads), sorts the cards
   by best CIDEr-D and saves a screenshot of the cards, shrunk to a small palette PNG
   (``eval/results/report_screenshot.png``, < 200 KB).
3. ``--open-images N``: the same for an N-image page made of Flickr8k train + dev images whose
   "generated" caption is their first reference (a size test, not a model): generation and opening times.

Writes ``eval/results/report_screenshot.json`` with every number and the commands.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "flickr8k"
RESULTS = REPO / "eval" / "results"
# scroll to the cards, then milliseconds from navigation start until the first card's thumbnail is
# decoded (polled every 10 ms)
FIRST_THUMB = """var done = arguments[arguments.length - 1];
document.getElementById('cards').scrollIntoView();
(function poll() { var i = document.querySelector('img.thumb');
  if (!i || (i.complete && i.naturalWidth)) done(performance.now()); else setTimeout(poll, 10); })();"""


def timed(cmd: list[str]) -> dict:
    """Run a command; its wall seconds and CPU seconds (user + system of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"command": " ".join(cmd), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "load_average_1min": round(os.getloadavg()[0], 1)}


def browser(width: int = 1280, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def open_seconds(driver, page: Path, repeats: int = 5) -> dict:
    """Load the page ``repeats`` times: the browser's navigation timing (seconds to the load event),
    least and median (the least is the one least slowed by other work on a shared machine)."""
    loads, shown = [], []
    for _ in range(repeats):
        driver.get(page.resolve().as_uri())
        loads.append(driver.execute_script(
            "return performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000)
        shown.append(driver.execute_async_script(FIRST_THUMB) / 1000)
    cards = driver.execute_script("return document.querySelectorAll('#cards .card').length")
    return {"load_s_min": round(min(loads), 2), "load_s_median": round(statistics.median(loads), 2),
            "first_thumbnail_s_min": round(min(shown), 2),
            "first_thumbnail_s_median": round(statistics.median(shown), 2),
            "repeats": repeats, "cards": cards, "page_mb": round(page.stat().st_size / 1e6, 1),
            "load_average_1min": round(os.getloadavg()[0], 1), "cpu_cores": os.cpu_count()}


def screenshot(driver, out: Path, width: int = 960) -> int:
    """Best CIDEr-D first, scrolled to the cards; a palette PNG ``width`` wide. Returns its bytes."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "sort")).select_by_value("cider-desc")
    driver.execute_script("document.getElementById('sort').closest('section').scrollIntoView()")
    time.sleep(1.0)   # the cards now in view get their thumbnails
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.png"
        driver.save_screenshot(str(raw))
        img = Image.open(raw).convert("RGB")
    img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return out.stat().st_size


def caption_report_cmd(captions: Path, page: Path, scores: Path | None, split_list: str) -> list[str]:
    cmd = [sys.executable, "-m", "captionkit", "report", str(captions), "--out", str(page),
           "--references", str(DATA / "Flickr8k.token.txt"), "--split-list", str(DATA / split_list),
           "--train-split-list", str(DATA / "Flickr_8k.trainImages.txt"), "--images", str(DATA / "images")]
    return cmd + (["--scores", str(scores)] if scores else [])


def size_test(n: int, tmp: Path, driver) -> dict:
    """An n-image page: Flickr8k train + dev images, each 'captioned' with its first reference."""
    from captionkit.data.captions import read_flickr8k_tokens

    tokens = read_flickr8k_tokens(DATA / "Flickr8k.token.txt")
    have = {p.name for p in (DATA / "images").iterdir()}
    ids = [i for i in tokens if i in have][:n]
    (tmp / "ids.txt").write_text("\n".join(ids) + "\n")
    (tmp / "captions.json").write_text(json.dumps([{"image_id": i, "caption": tokens[i][0]} for i in ids]))
    page = tmp / f"size_{n}.html"
    cmd = caption_report_cmd(tmp / "captions.json", page, None, "Flickr_8k.devImages.txt")
    cmd[cmd.index("--split-list") + 1] = str(tmp / "ids.txt")
    made = timed(cmd)
    return {"images": len(ids), "generate": made, "open": open_seconds(driver, page)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tag", default="val_beam10_ln0.5", help="the ensemble's decoding (selected on half A)")
    ap.add_argument("--out", default=str(RESULTS / "report_screenshot.png"))
    ap.add_argument("--open-images", type=int, default=0, help="also a size test with this many images")
    args = ap.parse_args()
    if not DATA.is_dir() or not shutil.which("chromium"):
        sys.exit(f"needs {DATA} and Debian's chromium + chromium-driver")
    ens = REPO / "eval" / "results" / "flickr8k_ensemble"
    result: dict = {"command": "python eval/report_screenshot.py " + " ".join(sys.argv[1:])}
    driver = browser()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            page = Path(tmp) / f"report_{args.tag}.html"
            cmd = caption_report_cmd(ens / f"captions_{args.tag}.json", page, ens / f"scores_{args.tag}.json",
                                     "Flickr_8k.devImages.txt")
            result["dev_1000"] = {"generate": timed(cmd), "open": open_seconds(driver, page)}
            result["screenshot_bytes"] = screenshot(driver, Path(args.out))
            if args.open_images:
                result[f"size_{args.open_images}"] = size_test(args.open_images, Path(tmp), driver)
    finally:
        driver.quit()
    result["screenshot"] = str(Path(args.out).relative_to(REPO))
    (RESULTS / "report_screenshot.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
