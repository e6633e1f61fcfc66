"""The tour's page: ``index.html`` beside the PNGs, opened in headless Chromium.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them);
without them it is skipped, except in CI, where it fails.
"""

import html.parser
import os
import pathlib
import shutil

import pytest

from jgd import tour


@pytest.fixture(scope="module")
def toured(tmp_path_factory):
    out = tmp_path_factory.mktemp("tour")
    result = tour.run([1, 2], out=out, echo=lambda _: None)
    checks = sum(r.agree is not None for s in result.sections for r in s.rows)
    return out, result, checks


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag in ("link", "script") or (tag == "a" and not attrs["href"].startswith("#")):
            self.links.append(attrs.get("href") or attrs.get("src"))


def test_the_page_links_every_figure_by_relative_path_and_nothing_else(toured):
    out, _, _ = toured
    page = (out / "index.html").read_text(encoding="utf-8")
    links = _Links()
    links.feed(page)
    assert links.images == ["01_bowl.png", "02_learning_rate.png"]
    assert all((out / src).is_file() for src in links.images)
    assert links.links == []  # no stylesheet, script or page from elsewhere
    assert "2.9763" in page and "comparisons agree" in page and "± 5e-05" in page


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("chromium and chromium-driver are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1366,768")  # a laptop's screen
    return webdriver.Chrome(
        service=webdriver.ChromeService(executable_path=driver), options=options
    )


def test_the_page_opens_in_a_browser_with_every_image_and_a_row_per_check(toured, tmp_path):
    out, _, checks = toured
    copied = tmp_path / "copied elsewhere"
    shutil.copytree(out, copied)  # the folder works where it is copied
    browser = _browser()
    try:
        browser.get(pathlib.Path(copied, "index.html").as_uri())
        images = browser.execute_script(
            "return [...document.images].map(i => [i.getAttribute('src'), i.complete,"
            " i.naturalWidth, i.getBoundingClientRect().width]);"
        )
        rows = browser.execute_script(
            "return document.querySelectorAll('#summary tr.check').length;"
        )
        wide = browser.execute_script("return document.documentElement.scrollWidth;")
    finally:
        browser.quit()
    assert [src for src, *_ in images] == ["01_bowl.png", "02_learning_rate.png"]
    assert all(done and natural > 0 for _, done, natural, _ in images), images
    assert all(0 < shown <= 1366 for *_, shown in images)  # fits a laptop's screen
    assert rows == checks
    assert wide <= 1366  # no sideways scrolling
