"""Tests for resumable downloads and `prepare iu_xray --download`, against a loopback HTTP server."""

from __future__ import annotations

import csv
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from data_helpers import make_tar_gz
from r2gen.data.download import DownloadError, download
from r2gen.data.manifest import sha256_file
from r2gen.data.prepare import main


class RangeFileServer(ThreadingHTTPServer):
    """Serves files from `folder`, honours single `Range: bytes=N-` requests and records them."""

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.folder = folder
        self.range_headers: list[str | None] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RangeHandler(BaseHTTPRequestHandler):
    server: RangeFileServer

    def do_GET(self) -> None:  # noqa: N802 (name fixed by http.server)
        path = self.server.folder / self.path.lstrip("/")
        header = self.headers.get("Range")
        self.server.range_headers.append(header)
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", header or "")
        start = int(match.group(1)) if match else 0
        if start >= len(data) and match:
            self.send_error(416)
            return
        self.send_response(206 if match else 200)
        if match:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path) -> Iterator[RangeFileServer]:
    folder = tmp_path / "served"
    folder.mkdir()
    instance = RangeFileServer(folder)
    thread = threading.Thread(target=instance.serve_forever, daemon=True)
    thread.start()
    yield instance
    instance.shutdown()
    instance.server_close()


def test_download_resumes_partial_file(server, tmp_path):
    payload = bytes(range(256)) * 4000
    (server.folder / "blob.bin").write_bytes(payload)
    destination = tmp_path / "out" / "blob.bin"
    destination.parent.mkdir()
    (tmp_path / "out" / "blob.bin.part").write_bytes(payload[:300_000])
    expected = sha256_file(server.folder / "blob.bin")

    download(f"{server.base_url}/blob.bin", destination, expected, progress=False)
    assert destination.read_bytes() == payload
    assert server.range_headers == ["bytes=300000-"]
    assert not (tmp_path / "out" / "blob.bin.part").exists()

    # A second call finds the verified file and sends no request.
    download(f"{server.base_url}/blob.bin", destination, expected, progress=False)
    assert len(server.range_headers) == 1


def test_download_checksum_mismatch_deletes_file(server, tmp_path):
    (server.folder / "blob.bin").write_bytes(b"abc" * 1000)
    destination = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match="does not match the expected"):
        download(f"{server.base_url}/blob.bin", destination, "0" * 64, progress=False)
    assert not destination.exists()
    assert not (tmp_path / "blob.bin.part").exists()


def test_download_missing_url_fails_fast(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.base_url}/absent.tgz", tmp_path / "absent.tgz", progress=False)
    assert server.range_headers == [None]


def test_prepare_iu_download_from_loopback(server, iu_root, tmp_path):
    reports = iu_root / "extras" / "NLMCXR_reports.tgz"
    (server.folder / "NLMCXR_reports.tgz").write_bytes(reports.read_bytes())
    with (iu_root / "extras" / "image_sources.csv").open(newline="") as handle:
        files = {row["openi_filename"]: iu_root / "images" / row["r2gen_path"] for row in csv.DictReader(handle)}
    images = make_tar_gz(server.folder / "NLMCXR_png.tgz", files, folder="NLMCXR_png")
    split_from = iu_root / "extras" / "annotation_r2gen_full_reports_only.json"
    out = tmp_path / "iu"

    status = main([
        "iu_xray", "--download", "--base-url", server.base_url + "/", "--out", str(out),
        "--reports-sha256", sha256_file(reports), "--images-sha256", sha256_file(images),
        "--split-from", str(split_from),
    ])
    assert status == 0
    assert sha256_file(out / "downloads" / "NLMCXR_reports.tgz") == sha256_file(reports)
    assert sha256_file(out / "downloads" / "NLMCXR_png.tgz") == sha256_file(images)
    annotation = json.loads((out / "annotation.json").read_text(encoding="utf-8"))
    assert [entry["id"] for entry in annotation["test"]] == ["CXR1005_IM-0006"]
    assert (out / "images" / "CXR1005_IM-0006" / "1.png").read_bytes() == (
        iu_root / "images" / "CXR1005_IM-0006" / "1.png"
    ).read_bytes()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sources"][0]["sha256"] == sha256_file(reports)


def test_prepare_download_rejects_local_paths(tmp_path):
    with pytest.raises(SystemExit, match="do not pass --reports"):
        main(["iu_xray", "--download", "--reports", "x.tgz", "--out", str(tmp_path)])
