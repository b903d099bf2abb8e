"""The results page in a real headless Chromium: rows and images render, sorting works, a screenshot is taken.

Chromium comes from Debian (``apt-get install -y chromium``); the test skips when it is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from r2gen.training.html_report import write_report

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1280, 900)

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(),
                                reason=f"{CHROMIUM} not found; install it with `apt-get install -y chromium`")


def run_chromium(tmp_path: Path, url: str, *mode: str) -> str:
    """Run headless Chromium on ``url`` with a fresh profile and return its stdout."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-quic", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
               *mode, url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    shutil.rmtree(profile, ignore_errors=True)
    return result.stdout


@pytest.fixture(scope="module")
def page_path(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(tiny_run, tmp_path_factory.mktemp("browser") / "report.html", thumbnail_size=64)


def body_attributes(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))


def rendered_ids(dom: str) -> list[str]:
    return re.findall(r'<tr class="study"[^>]*data-id="([^"]*)"', dom)


def test_rows_and_images_render(page_path: Path, tmp_path: Path) -> None:
    dom = run_chromium(tmp_path, page_path.as_uri(), "--dump-dom")
    attributes = body_attributes(dom)
    assert attributes.get("ready") == "true"
    assert attributes.get("images-total") == "4"
    assert attributes.get("images-loaded") == "4"
    assert attributes.get("sort") == "index-asc"
    assert rendered_ids(dom) == ["test-a", "test-b", "test-c"]


def test_broken_image_not_counted(page_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    page = page_path.read_text(encoding="utf-8")
    broken.write_text(re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,AAAA", page, count=1), encoding="utf-8")
    attributes = body_attributes(run_chromium(tmp_path, broken.as_uri(), "--dump-dom"))
    assert attributes.get("images-total") == "4"
    assert attributes.get("images-loaded") == "3"


def test_hash_sorts_by_bleu(page_path: Path, tmp_path: Path) -> None:
    ascending = run_chromium(tmp_path, page_path.as_uri() + "#sort=bleu4-asc", "--dump-dom")
    assert body_attributes(ascending).get("sort") == "bleu4-asc"
    assert rendered_ids(ascending) == ["test-c", "test-b", "test-a"]
    descending = run_chromium(tmp_path, page_path.as_uri() + "#sort=bleu4-desc", "--dump-dom")
    assert rendered_ids(descending) == ["test-a", "test-b", "test-c"]


def test_screenshot_taken(page_path: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    run_chromium(tmp_path, page_path.as_uri(), f"--screenshot={screenshot}")
    with Image.open(screenshot) as image:
        assert image.size == WINDOW
        colors = image.convert("RGB").getcolors(maxcolors=1_000_000)
    # A blank or failed page has a handful of colors; text, marks and thumbnails give many.
    assert colors is not None and len(colors) > 500
