"""report/index.html of ``crackscope inspect-image FOLDER`` with the shipped crack pair and no model
argument: photos drawn by hand (a 9-px crack, a 3-px crack, none) come worst first, each row's numbers
are those of summary.csv (mm = px x mm-per-pixel), the unreadable photo is listed, and the page needs
nothing outside the report folder (relative links to files that exist, thumbnails embedded)."""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from crackscope.cli import main
from crackscope.deploy.cascade.report_html import PhotoRow, render_report, severity_key

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Page(HTMLParser):
    """The rows of the photo table (their data-* attributes and cell texts), every src / href, and the
    skipped table's cells."""

    def __init__(self):
        super().__init__()
        self.rows, self.links, self.skipped, self._cell, self._table = [], [], [], None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or a.get("class")
        if tag == "tr" and self._table == "photos" and "data-rank" in a:
            self.rows.append({**a, "cells": []})
        if tag == "td":
            self._cell = []
        for key in ("src", "href"):
            if key in a:
                self.links.append(a[key])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            text = " ".join(" ".join(self._cell).split())
            if self._table == "photos" and self.rows:
                self.rows[-1]["cells"].append(text)
            elif self._table == "skipped":
                self.skipped.append(text)
            self._cell = None
        if tag == "table":
            self._table = None


@pytest.fixture(scope="module")
def report(tmp_path_factory, draw_crack_photos):
    """The CLI run on the three drawn photos and an unreadable file, at 0.5 mm per pixel."""
    tmp = tmp_path_factory.mktemp("report")
    photos = tmp / "photos"
    drawn = {name: length for name, (_, length) in draw_crack_photos(photos).items()}
    (photos / "broken.png").write_text("not an image")
    out = tmp / "report"
    assert main(["inspect-image", str(photos), "--out", str(out), "--mm-per-pixel", "0.5"]) == 0
    page = _Page()
    page.feed((out / "index.html").read_text())
    with open(out / "summary.csv", newline="") as fh:
        summary = {Path(r["file"]).stem: r for r in csv.DictReader(fh)}
    return out, page, summary, drawn


def test_rows_come_worst_first_as_the_photos_were_drawn(report):
    _, page, summary, drawn = report
    assert [Path(r["data-file"]).stem for r in page.rows] == ["wide", "thin", "plain"]
    assert [r["data-rank"] for r in page.rows] == ["1", "2", "3"]
    # the measured crack is the drawn one: its skeleton length within 10 % of the drawn centre line
    for name in ("wide", "thin"):
        assert float(summary[name]["total_length_px"]) == pytest.approx(drawn[name], rel=0.10)
    assert summary["plain"]["crack_count"] == "0"


def test_each_row_shows_the_numbers_of_summary_csv_in_px_and_mm(report):
    _, page, summary, _ = report
    for row in page.rows:
        s = summary[Path(row["data-file"]).stem]
        cells = row["cells"]
        assert cells[4] == s["crack_count"]
        widest_px = float(s["max_width_px"])
        total_px = float(s["total_length_px"])
        assert cells[6] == f"{widest_px * 0.5:.2f} mm {widest_px:.1f} px"
        assert cells[7] == f"{total_px * 0.5:.2f} mm {total_px:.1f} px"
        assert float(row["data-widest"]) == widest_px and float(row["data-total"]) == total_px


def test_the_unreadable_photo_is_listed(report):
    out, page, _, _ = report
    assert any(cell.endswith("broken.png") for cell in page.skipped)
    assert (out / "skipped.txt").read_text().count("\n") == 1


def test_the_page_needs_nothing_outside_the_report_folder(report):
    out, page, _, _ = report
    for link in page.links:
        if link.startswith("#") or link.startswith("data:image/jpeg;base64,"):
            continue
        assert not re.match(r"^([a-z]+:|/)", link), link  # no server, no internet, no absolute path
        assert (out / link).is_file(), link
    assert sum(link.startswith("data:image/") for link in page.links) == 2 * len(page.rows)  # both thumbnails


def test_severity_is_widest_then_total_length_then_count():
    rows = [
        {"max_width_px": 3.0, "total_length_px": 900.0, "crack_count": 9},
        {"max_width_px": 7.0, "total_length_px": 10.0, "crack_count": 1},
        {"max_width_px": 3.0, "total_length_px": 950.0, "crack_count": 1},
    ]
    ranked = sorted(rows, key=severity_key, reverse=True)
    assert [r["total_length_px"] for r in ranked] == [10.0, 950.0, 900.0]


def test_file_names_are_escaped():
    row = {
        "file": "<script>alert(1)</script>.jpg",
        "output": "x",
        "width": 1,
        "height": 1,
        "crack_count": 0,
        "total_length_px": 0.0,
        "max_width_px": 0.0,
    }
    html = render_report([PhotoRow(row, [])], [("a&b.jpg", "cannot read")], None, {"folder": "f", "segmenter": "s"})
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in html
    assert "a&amp;b.jpg" in html
