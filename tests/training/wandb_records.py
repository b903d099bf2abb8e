"""Read the records of a W&B run file (``run-<id>.wandb``) without a W&B server.

The file is a 7-byte header followed by a LevelDB-style log: 32 KiB blocks of chunks, each with a
4-byte CRC, a 2-byte little-endian length and a 1-byte type (1 full, 2 first, 3 middle, 4 last).
Every complete record is a ``wandb_internal_pb2.Record`` protobuf.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

BLOCK_SIZE = 32768
HEADER_SIZE = 7
CHUNK_HEADER_SIZE = 7


def read_records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = Path(path).read_bytes()
    if not data.startswith(b":W&B"):
        raise ValueError(f"{path} is not a W&B run file (no ':W&B' header)")
    records, pending, position = [], b"", HEADER_SIZE
    while position + CHUNK_HEADER_SIZE <= len(data):
        left_in_block = BLOCK_SIZE - position % BLOCK_SIZE
        if left_in_block < CHUNK_HEADER_SIZE:  # block trailer padding
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + CHUNK_HEADER_SIZE])
        position += CHUNK_HEADER_SIZE
        chunk = data[position:position + length]
        position += length
        if kind == 0 and length == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@dataclass
class RunContents:
    """What an offline run recorded: group, tags, config, history rows and the final summary."""

    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def history_keys(self) -> set[str]:
        return {key for row in self.history for key in row}


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def finished_records(run_dir: Path, wait_s: float = 60.0) -> list[wandb_internal_pb2.Record]:
    """Return the records of the single offline run under ``<run_dir>/wandb`` once its exit record is written.

    ``run.finish()`` can return before W&B's service process has flushed the file, so this polls.
    """
    files = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    if len(files) != 1:
        raise AssertionError(f"expected one offline W&B run under {run_dir}, found {files}")
    deadline = time.monotonic() + wait_s
    while True:
        records = read_records(files[0])
        if any(record.WhichOneof("record_type") == "exit" for record in records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"{files[0]} has no exit record after {wait_s} s")
        time.sleep(0.2)


def read_run(run_dir: Path) -> RunContents:
    """Parse the single offline run under ``<run_dir>/wandb``."""
    contents = RunContents()
    for record in finished_records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            contents.group, contents.tags = record.run.run_group, list(record.run.tags)
            contents.config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            contents.config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            contents.history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            contents.summary.update({item.key: json.loads(item.value_json) for item in record.summary.update
                                     if item.key})
    return contents


@dataclass
class TableArtifact:
    """A logged table as W&B stores it offline: a run_table artifact whose files sit in W&B's staging folder."""

    table: dict[str, Any]
    files: dict[str, Path]  # artifact path -> local staged file


def read_table_artifacts(run_dir: Path, key: str) -> list[TableArtifact]:
    """Return every table logged under ``key``, in logging order.

    An offline run writes a table's cells with their media (images) into a ``run_table`` artifact;
    the copy under ``files/media/table`` keeps only placeholders for media cells.
    """
    table_name = key + ".table.json"
    tables = []
    for record in finished_records(run_dir):
        if record.WhichOneof("record_type") != "artifact" or record.artifact.type != "run_table":
            continue
        entries = {entry.path: Path(entry.local_path) for entry in record.artifact.manifest.contents}
        if table_name in entries:
            tables.append(TableArtifact(json.loads(entries[table_name].read_text()), entries))
    return tables
