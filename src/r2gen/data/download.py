"""Resumable HTTP downloads with a progress bar and sha256 verification."""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from r2gen.data.manifest import sha256_file

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60.0


class DownloadError(RuntimeError):
    """Raised when a download fails after its retries or its checksum does not match."""


def download(
    url: str,
    destination: Path,
    expected_sha256: str | None = None,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Download `url` to `destination`, resuming a partial `<destination>.part` file.

    An existing `destination` is kept when it matches `expected_sha256` (or when no checksum is
    given). A partial file is resumed with an HTTP Range request; a server that ignores Range makes
    the download start over. The file is renamed into place only after its checksum matches.
    """
    destination = Path(destination)
    if destination.is_file():
        if expected_sha256 is None or sha256_file(destination) == expected_sha256.lower():
            logger.info("Using existing %s", destination)
            return destination
        logger.warning("%s does not match the expected sha256; downloading it again", destination)
        destination.unlink()

    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    for attempt in range(1, retries + 1):
        try:
            _fetch(url, partial, progress)
            break
        except OSError as error:  # urllib's URLError and HTTPError are OSError subclasses
            if isinstance(error, urllib.error.HTTPError) and 400 <= error.code < 500:
                raise DownloadError(
                    f"Download of {url} failed with HTTP {error.code} {error.reason}; check the URL "
                    "or --base-url"
                ) from error
            if attempt == retries:
                raise DownloadError(
                    f"Download of {url} failed after {retries} attempt(s): {error}; the partial file "
                    f"{partial} is kept, so rerun the same command to resume"
                ) from error
            logger.warning("Download of %s failed (attempt %d/%d): %s; retrying", url, attempt, retries, error)
            time.sleep(min(2.0**attempt, 30.0))

    actual = sha256_file(partial)
    if expected_sha256 is not None and actual != expected_sha256.lower():
        partial.unlink()
        raise DownloadError(
            f"{url}: sha256 {actual} does not match the expected {expected_sha256}; the download was "
            "deleted. Rerun to download again, or check the expected checksum"
        )
    os.replace(partial, destination)
    logger.info("Downloaded %s to %s (sha256 %s)", url, destination, actual)
    return destination


def _fetch(url: str, partial: Path, progress: bool) -> None:
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # The partial file is already complete.
            return
        raise
    with response:
        if offset and response.status != 206:
            logger.info("Server ignored the Range request for %s; restarting from byte 0", url)
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        mode = "ab" if offset else "wb"
        with partial.open(mode) as stream, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=partial.name[:-5],
            disable=not progress,
        ) as bar:
            while chunk := response.read(CHUNK_BYTES):
                stream.write(chunk)
                bar.update(len(chunk))
    size = partial.stat().st_size
    if total is not None and size != total:
        raise OSError(f"connection closed at byte {size} of {total}")
