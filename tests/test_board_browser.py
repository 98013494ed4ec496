"""The board in a real browser: Debian's headless Chromium, driven by selenium through chromedriver.

It loads with no JavaScript error, every plot draws, switching a run off hides its traces
everywhere, and choosing a reference turns the curves into ratios. A screenshot is left
next to the page (``board.png`` in the test's temporary folder)."""

import shutil

import pytest

pytest.importorskip("plotly", reason="the board needs plotly (pip install '.[board]')")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (pip install selenium)")

from test_board import board_runs, make_board  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no Chromium: apt-get install chromium chromium-driver (.ci/run does)",
)

# traces per run of every plotly figure of the page, drawn (SVG/GL trace groups) and declared
TRACES = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (gd) {
  var shown = {};
  (gd.data || []).forEach(function (t) {
    var run = (t.meta && t.meta.run) || '';
    if (t.visible !== false) { shown[run] = (shown[run] || 0) + 1; }
  });
  return {id: gd.id, drawn: gd.querySelectorAll('g.trace, g.scatterlayer .trace, .heatmaplayer .hm').length,
          shown: shown};
});
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    paths = board_runs(tmp_path_factory)
    output = tmp_path_factory.mktemp("browser") / "board.html"
    code, _ = make_board(paths, output)
    assert code == 0
    return output


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,2400"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _open(browser, page):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page.as_uri())
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")


def _set_run(browser, name, on):
    box = browser.find_element("css selector", f'input[data-switch="runs"][value="{name}"]')
    if box.is_selected() != on:
        box.click()


def test_page_loads_and_draws_without_errors(browser, page):
    _open(browser, page)
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    figures = browser.execute_script(TRACES)
    assert len(figures) >= 8
    # every plot holds data and has drawn it; the empty-panel divs are not plotly figures
    for figure in figures:
        assert sum(figure["shown"].values()) > 0 and figure["drawn"] > 0, figure
    browser.save_screenshot(str(page.with_suffix(".png")))
    assert page.with_suffix(".png").stat().st_size > 50_000


def test_switching_a_run_off_hides_its_traces(browser, page):
    _open(browser, page)
    before = {f["id"]: f for f in browser.execute_script(TRACES)}
    assert any(f["shown"].get("experiment") for f in before.values())
    _set_run(browser, "experiment", False)
    after = {f["id"]: f for f in browser.execute_script(TRACES)}
    for div_id, figure in after.items():
        assert not figure["shown"].get("experiment"), div_id
        # the other runs stay as they were
        others = {k: v for k, v in before[div_id]["shown"].items() if k != "experiment"}
        assert {k: v for k, v in figure["shown"].items() if k != "experiment"} == others, div_id
    row = browser.find_element("css selector", 'tr[data-run="experiment"]')
    assert not row.is_displayed()
    _set_run(browser, "experiment", True)
    assert {f["id"]: f["shown"] for f in browser.execute_script(TRACES)} == {k: f["shown"] for k, f in before.items()}


def test_reference_run_gives_ratios(browser, page):
    from selenium.webdriver.support.ui import Select

    _open(browser, page)
    curve = """
    var gd = document.getElementById('panel-angular_resolution_deg');
    var t = gd.data.filter(function (t) { return t.meta.run === arguments[0] && t.meta.method === 'GammaPhysNet'; })[0];
    return t.y.filter(function (v) { return v !== null && isFinite(v); });
    """.replace("arguments[0]", "'from_dl2'")
    absolute = browser.execute_script(curve)
    assert absolute and max(absolute) > 0.05  # degrees
    Select(browser.find_element("id", "reference")).select_by_value("experiment")
    ratios = browser.execute_script(curve)
    # from_dl2 is the experiment's own DL2: the same curve, so its ratio to the reference is one
    assert ratios and all(abs(r - 1) < 1e-6 for r in ratios), ratios
