"""Build manifests: what an `annotation.json` was built from, with which options, and what was dropped.

A builder writes `manifest.json` next to the annotation file. Its sha256 identifies the data a run
used, so runs log it (`dataset_fingerprint`) and the decoded-image cache keys on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import r2gen

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
ANNOTATION_NAME = "annotation.json"
# Dropped entries listed in the manifest's `dropped` field; all of them are always counted.
MAX_LISTED_DROPS = 100_000


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file in `path`'s folder, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, document: Any) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


@dataclass(frozen=True)
class Dropped:
    """A study or image the builder left out, with the reason."""

    id: str
    reason: str


@dataclass
class SourceFile:
    """An input file of a build, identified by name, size and sha256."""

    role: str
    path: str
    bytes: int
    sha256: str

    @classmethod
    def describe(cls, role: str, path: Path) -> SourceFile:
        path = Path(path)
        logger.info("Hashing %s (%s)", path, role)
        return cls(role=role, path=str(path), bytes=path.stat().st_size, sha256=sha256_file(path))

    @classmethod
    def describe_tree(cls, role: str, folder: Path, files: Iterable[Path]) -> SourceFile:
        """Describe the files read from a folder: sha256 over each relative name and content hash, sorted."""
        folder = Path(folder)
        digest, total = hashlib.sha256(), 0
        for path in sorted(Path(file) for file in files):
            data = path.read_bytes()
            digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0")
            digest.update(hashlib.sha256(data).digest())
            total += len(data)
        return cls(role=role, path=str(folder), bytes=total, sha256=digest.hexdigest())


@dataclass
class Manifest:
    """Everything needed to trace an annotation file back to its sources."""

    dataset: str
    builder: str
    builder_version: str
    options: dict[str, Any]
    sources: list[SourceFile] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    images: int = 0
    dropped: list[Dropped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self, annotation_sha256: str) -> dict[str, Any]:
        reasons = Counter(_reason_kind(item.reason) for item in self.dropped)
        return {
            "dataset": self.dataset,
            "builder": self.builder,
            "builder_version": self.builder_version,
            "r2gen_version": r2gen.__version__,
            "annotation": {"file": ANNOTATION_NAME, "sha256": annotation_sha256},
            "options": self.options,
            "sources": [asdict(source) for source in self.sources],
            "counts": self.counts,
            "images": self.images,
            "dropped_total": len(self.dropped),
            "dropped_by_reason": dict(sorted(reasons.items())),
            "dropped": [asdict(item) for item in self.dropped[:MAX_LISTED_DROPS]],
            "notes": self.notes,
        }


def _reason_kind(reason: str) -> str:
    """Return the reason up to its first colon, so counts group e.g. all missing-image drops."""
    return reason.split(":", 1)[0]


def write_build(out_dir: Path, annotation: dict[str, list[dict]], manifest: Manifest) -> Path:
    """Write `annotation.json` and `manifest.json` atomically to `out_dir`; return the manifest path.

    The manifest is written last, so a manifest always describes the annotation next to it.
    """
    out_dir = Path(out_dir)
    manifest.counts = {split: len(entries) for split, entries in annotation.items()}
    annotation_bytes = (json.dumps(annotation, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    write_bytes_atomic(out_dir / ANNOTATION_NAME, annotation_bytes)
    document = manifest.to_json(hashlib.sha256(annotation_bytes).hexdigest())
    manifest_path = out_dir / MANIFEST_NAME
    write_json_atomic(manifest_path, document)
    logger.info(
        "Wrote %s (%s) and %s (sha256 %s); dropped %d",
        out_dir / ANNOTATION_NAME,
        ", ".join(f"{split}={count}" for split, count in manifest.counts.items()),
        manifest_path,
        sha256_file(manifest_path),
        len(manifest.dropped),
    )
    return manifest_path


def dataset_fingerprint(annotation_path: Path) -> str:
    """Return an id for the data behind `annotation_path`.

    It is `manifest:<sha256>` of the `manifest.json` next to the annotation when that manifest names
    this annotation file with a matching checksum, else `annotation:<sha256>` of the annotation file.
    """
    annotation_path = Path(annotation_path)
    annotation_sha = sha256_file(annotation_path)
    manifest_path = annotation_path.parent / MANIFEST_NAME
    if manifest_path.is_file():
        try:
            recorded = json.loads(manifest_path.read_text(encoding="utf-8"))["annotation"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            logger.warning("Ignoring unreadable manifest %s: %s", manifest_path, error)
        else:
            if recorded.get("file") == annotation_path.name and recorded.get("sha256") == annotation_sha:
                return f"manifest:{sha256_file(manifest_path)}"
            logger.warning(
                "Manifest %s does not describe %s (checksum or name differs); the dataset is "
                "identified by the annotation file's checksum instead",
                manifest_path,
                annotation_path,
            )
    return f"annotation:{annotation_sha}"
