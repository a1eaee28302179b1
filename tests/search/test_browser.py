"""The search page end to end in a real headless Chromium (Debian's chromium + chromium-driver, driven by
selenium): a typed query shows the expected window of a long video in the result grid, its player starts at the
window's start; an uploaded video finds itself. Skipped with a message when Chromium is missing, except under
CI=true, where that is a failure."""
import os
import shutil
import socket
import threading
import time

import pytest

from tests.search.conftest import LONG_CLIPS
from vatt.search.indexer import build_index
from vatt.search.model import SearchModel
from vatt.search.query import Searcher
from vatt.search.server import create_app
from vatt.search.sources import media_files

WAIT = 60  # seconds for the page to answer (a query embeds the text on a busy CPU)
PAGE_RESULTS = 12  # the page's default k
MISSING = ("the browser test needs Chromium and its driver (apt-get install chromium chromium-driver) and "
           "selenium (pip install selenium)")


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths; a skip (a failure under CI=true) when either or selenium is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        selenium = None
    if not (chromium and driver and selenium):
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return chromium, driver


@pytest.fixture(scope="module")
def chromium():
    return find_browser()


def browser(paths: tuple[str, str]):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium, driver = paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(driver))


@pytest.fixture(scope="module")
def site(chromium, pretrained, media_template, held_out, tmp_path_factory):
    """The page over an index of the user media and 20 held-out clips, served on a free local port."""
    import uvicorn
    model = SearchModel.load(pretrained)
    paths = media_files(media_template) + [e.path for e in held_out.entries[10:30]]
    _, index = build_index(model, paths, tmp_path_factory.mktemp("site") / "index", num_workers=1, progress=False)
    searcher = Searcher(index, model)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(searcher), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield searcher, f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


def best_found_window(searcher: Searcher, held_out, long_video: str):
    """A window of long.mp4 after its start, with the caption of the clip it shows, that the model ranks among
    the page's results for that caption (the page test is about the page, not about the model's recall)."""
    ranked = []
    for position, clip in enumerate(LONG_CLIPS[1:], 1):
        caption = held_out.entries[clip].captions[0].text
        hits = searcher.text([caption], k=PAGE_RESULTS)[0]
        ranks = [r for r, h in enumerate(hits) if h.path == long_video and abs(h.start - 0.8 * position) < 1e-3]
        if ranks:
            ranked.append((ranks[0], caption, hits[ranks[0]]))
    assert ranked, "no window of long.mp4 is among the results for its own caption"
    return min(ranked, key=lambda r: r[0])[1:]


def test_a_typed_query_shows_the_expected_window_with_a_player_at_its_start(chromium, site, held_out, media_template):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    searcher, url = site
    long_video = str(media_template / "long.mp4")
    caption, expected = best_found_window(searcher, held_out, long_video)
    driver = browser(chromium)
    try:
        driver.get(url)
        box = driver.find_element(By.ID, "query")
        box.send_keys(caption)
        driver.find_element(By.CSS_SELECTOR, "#text-form button").click()
        WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .hit"))
        cards = driver.find_elements(By.CSS_SELECTOR, "#results .hit")
        assert len(cards) == PAGE_RESULTS
        card = next(c for c in cards if c.get_attribute("data-path") == long_video
                    and abs(float(c.get_attribute("data-start")) - expected.start) < 1e-3)
        assert "long.mp4" in card.text and f"{expected.start:.2f}–{expected.end:.2f} s" in card.text
        assert f"{expected.score:.3f}" in card.text
        player = card.find_element(By.TAG_NAME, "video")
        fragment = player.get_attribute("src").rsplit("#t=", 1)[1]
        assert [float(t) for t in fragment.split(",")] == pytest.approx([expected.start, expected.end])
        WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("return arguments[0].readyState >= 1", player))
        assert driver.execute_script("return arguments[0].currentTime", player) == pytest.approx(expected.start,
                                                                                                  abs=0.05)
        thumbnail = card.find_element(By.TAG_NAME, "img")
        WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("return arguments[0].naturalWidth > 0", thumbnail))
    finally:
        driver.quit()


def test_an_uploaded_video_finds_itself(chromium, site, media_template):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    _, url = site
    driver = browser(chromium)
    try:
        driver.get(url)
        driver.find_element(By.ID, "upload").send_keys(str(media_template / "nested" / "clip.mp4"))
        driver.find_element(By.CSS_SELECTOR, "#upload-form button").click()
        WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .hit"))
        first = driver.find_elements(By.CSS_SELECTOR, "#results .hit")[0]
        assert first.get_attribute("data-path") == str(media_template / "nested" / "clip.mp4")
        assert "clip.mp4" in driver.find_element(By.ID, "status").text
    finally:
        driver.quit()
