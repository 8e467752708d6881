"""The page of ``crackscope serve`` and the folder report, in a real browser: Debian's Chromium
(installed by ``make test``), driven by Playwright (no browser is downloaded). A photo dropped on the
page shows its overlay and a crack table equal to what ``POST /api/inspect`` returns for it; two tabs
keep their own results; a non-image gets the API's one-line message; report/index.html opened from
disk lists the photos worst first, sorts, and opens a photo with its crack table.

Without Chromium these tests fail, never skip: ``-m "not browser"`` leaves them out on purpose."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import httpx
import pytest
from PIL import Image

from crackscope.cli import main

CHROMIUM = Path(os.environ.get("CRACKSCOPE_CHROMIUM", "/usr/bin/chromium"))
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: 'make test' installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


_LOADED = "() => { const i = document.querySelector('SELECTOR'); return i.complete && i.naturalWidth > 0; }"


def _wait_for_overlay(page):
    page.wait_for_selector("article.photo img.overlay")
    page.wait_for_function(_LOADED.replace("SELECTOR", "article.photo img.overlay"))


def _table(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(selector, "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))")


def test_a_dropped_photo_shows_its_overlay_and_the_apis_crack_table(browser, running_server, crack_photos, tmp_path):
    photos = crack_photos(tmp_path / "root" / "photos")
    photo = photos["wide"][0]
    with running_server(tmp_path / "root") as (url, _):
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url + "/")
        page.fill("#mm_per_pixel", "0.5")
        page.set_input_files("#photos", str(photo))
        _wait_for_overlay(page)
        shown = _table(page, "article.photo table.cracks tbody tr")
        with open(photo, "rb") as fh:
            api = httpx.post(
                url + "/api/inspect", files={"file": (photo.name, fh, "image/jpeg")}, data={"mm_per_pixel": "0.5"}
            ).json()
        expected = [
            [str(c["index"]), f"{c['length_px']:.1f}", f"{c['max_width_px']:.1f}", f"{c['mean_width_px']:.1f}"]
            + [str(c["area_px"]), f"{c['length_mm']:.2f}", f"{c['max_width_mm']:.2f}", f"{c['mean_width_mm']:.2f}"]
            + [f"{c['area_mm2']:.2f}"]
            for c in api["cracks"]
        ]
        assert shown == expected and len(shown) == api["summary"]["cracks"]["count"] >= 1
        assert page.inner_text("article.photo h2") == "wide.jpg"
        shot = tmp_path / "serve-page.png"
        page.screenshot(path=str(shot))
        assert Image.open(shot).size == (1000, 900)

        notes = tmp_path / "notes.jpg"
        notes.write_text("not a photo")
        page.set_input_files("#photos", str(notes))
        page.wait_for_selector("#error:not([hidden])")
        assert page.inner_text("#error") == "notes.jpg is not an image (no image format recognised)"


def test_two_tabs_keep_their_own_results(browser, running_server, crack_photos, tmp_path):
    photos = crack_photos(tmp_path / "root" / "photos")
    with running_server(tmp_path / "root") as (url, _):
        context = browser.new_context()
        tabs = {name: context.new_page() for name in ("thin", "wide")}
        for tab in tabs.values():
            tab.goto(url + "/")
        for name, tab in tabs.items():  # both jobs started before either is looked at
            tab.set_input_files("#photos", str(photos[name][0]))
        for name, tab in tabs.items():
            _wait_for_overlay(tab)
            assert tab.eval_on_selector_all("article.photo", "a => a.map(x => x.dataset.file)") == [f"{name}.jpg"]
        context.close()


def test_index_html_opened_from_disk(browser, crack_photos, tmp_path):
    crack_photos(tmp_path / "photos")
    (tmp_path / "photos" / "broken.png").write_text("not an image")
    out = tmp_path / "report"
    assert main(["inspect-image", str(tmp_path / "photos"), "--out", str(out), "--mm-per-pixel", "0.5"]) == 0
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.goto((out / "index.html").as_uri())
    files = "rows => rows.map(r => r.dataset.file)"
    assert [Path(f).stem for f in page.eval_on_selector_all("#photos tbody tr", files)] == ["wide", "thin", "plain"]
    assert "broken.png" in page.inner_text("#skipped")
    page.wait_for_function("() => Array.from(document.querySelectorAll('#photos img')).every(i => i.naturalWidth > 0)")
    shot = tmp_path / "report-index.png"
    page.screenshot(path=str(shot))

    page.click("#photos th button[data-key=file]")  # by name, A to Z
    assert [Path(f).stem for f in page.eval_on_selector_all("#photos tbody tr", files)] == ["plain", "thin", "wide"]
    page.click("#photos th button[data-key=widest]")  # widest first again
    assert [Path(f).stem for f in page.eval_on_selector_all("#photos tbody tr", files)] == ["wide", "thin", "plain"]

    page.click("#photos tbody tr:first-child td.count")  # a click on the row opens the photo
    detail = page.locator("section.detail:target")
    assert detail.is_visible() and "wide.jpg" in detail.locator("h2").inner_text()
    page.wait_for_function(
        "() => { const i = document.querySelector('section.detail:target img.full'); "
        "return i.complete && i.naturalWidth > 0; }"
    )  # the overlay, by its relative link
    with open(out / "wide" / "cracks.csv", newline="") as fh:
        cracks = list(csv.DictReader(fh))
    shown = _table(page, "section.detail:target table.cracks tbody tr")
    assert [row[0] for row in shown] == [c["index"] for c in cracks]
    assert [row[1] for row in shown] == [f"{float(c['length_px']):.1f}" for c in cracks]
    assert shot.is_file()
