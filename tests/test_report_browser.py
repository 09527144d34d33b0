"""The reports in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, via Selenium).

The page must load from disk with no console error, show one card per image, sort and filter them
with its inline script, and show a hostile caption as text without running it; a run report must
show its curves. A screenshot of each page is kept as a test artifact (pytest's tmp folder, path
printed). Skipped, with the reason, where Chromium, its driver or Selenium is absent (``.ci/run``
installs them).
"""
import shutil

import pytest

from captionkit.cli import main

from test_report import CAPTIONS, REFS, make_caption_files, report_args, write_log

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install -y chromium "
                "chromium-driver; .ci/run does this)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)   # the system driver: no download
    yield driver
    driver.quit()


def errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def card_ids(driver, visible_only=False) -> list[str]:
    cards = driver.find_elements(By.CSS_SELECTOR, "#cards .card")
    return [c.find_element(By.CLASS_NAME, "id").get_attribute("textContent") for c in cards
            if not visible_only or c.is_displayed()]


def no_alert(driver) -> bool:
    try:
        driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


@pytest.fixture(scope="module")
def caption_report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("browser")
    f = make_caption_files(tmp_path)
    page = tmp_path / "report.html"
    assert main(report_args(f, "--out", str(page))) == 0
    return page


def test_caption_report_in_chromium(browser, caption_report):
    page = caption_report
    browser.get(page.resolve().as_uri())
    assert errors(browser) == [] and no_alert(browser)
    assert card_ids(browser) == [c["image_id"] for c in CAPTIONS]             # one card per image
    cider = {c.find_element(By.CLASS_NAME, "id").get_attribute("textContent"): float(c.get_attribute("data-cider"))
             for c in browser.find_elements(By.CSS_SELECTOR, "#cards .card")}
    sort = Select(browser.find_element(By.ID, "sort"))
    sort.select_by_value("cider-desc")
    assert card_ids(browser) == sorted(cider, key=lambda i: -cider[i])
    sort.select_by_value("cider-asc")
    assert card_ids(browser) == sorted(cider, key=lambda i: cider[i])
    assert card_ids(browser) != [c["image_id"] for c in CAPTIONS]
    sort.select_by_value("file")
    assert card_ids(browser) == [c["image_id"] for c in CAPTIONS]

    box = browser.find_element(By.ID, "filter")
    box.send_keys("UMBRELLA")                              # in 1004's caption and references only
    assert card_ids(browser, visible_only=True) == ["1004.jpg"]
    assert browser.find_element(By.ID, "shown").text == "1"
    box.clear()
    box.send_keys("bicycle")                               # a reference word of 1002 only
    assert card_ids(browser, visible_only=True) == ["1002.jpg"]
    box.clear()
    box.send_keys(" ")
    assert len(card_ids(browser, visible_only=True)) == len(REFS)

    hostile = browser.find_element(By.ID, "card-1").find_element(By.CLASS_NAME, "gen")
    assert hostile.text.startswith("<script>alert(1)</script> a dog")        # visible, as text
    assert no_alert(browser) and errors(browser) == []
    assert len(browser.find_elements(By.CSS_SELECTOR, "#cards script")) == 0
    widths = "return Array.from(document.querySelectorAll('img.thumb')).map(i => i.complete && i.naturalWidth)"
    # set from the page's JSON block by its script when near the viewport, then decoded
    WebDriverWait(browser, 5).until(lambda d: d.execute_script(widths) == [192, 192, 192])
    shot = page.parent / "caption_report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_sort_by_length(browser, caption_report):
    browser.get(caption_report.resolve().as_uri())
    Select(browser.find_element(By.ID, "sort")).select_by_value("len-desc")
    lengths = [int(c.get_attribute("data-len")) for c in browser.find_elements(By.CSS_SELECTOR, "#cards .card")]
    assert lengths == sorted(lengths, reverse=True) and len(set(lengths)) > 1


def test_run_report_in_chromium(browser, tmp_path):
    run = tmp_path / "runs" / "demo"
    write_log(run, [{"event": "epoch", "epoch": e, "train_loss": 5.0 / e, "val": {"CIDEr": 0.1 * e},
                     "time": 60.0 * e} for e in range(1, 5)])
    assert main(["report", str(run)]) == 0
    browser.get((run / "report.html").resolve().as_uri())
    assert errors(browser) == []
    curves = {img.get_attribute("alt"): img for img in browser.find_elements(By.CSS_SELECTOR, ".plots img")}
    assert set(curves) == {"loss", "val CIDEr"}
    for img in curves.values():   # decoded by the browser: a real image with a size
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 100
    rows = browser.find_elements(By.XPATH, "//h2[text()='Epochs']/following-sibling::table//tr")
    assert len(rows) == 1 + 4
    shot = tmp_path / "run_report.png"
    assert browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
