"""Studies to report on: image files from the command line, a folder, or a CSV that groups views.

Input formats:
- a list of image files: one study whose views are those files, in the given order;
- a folder: one study per image file (PNG or JPEG, searched recursively), with the file's path
  relative to the folder, without its suffix, as the study id;
- a CSV with a header ``id,image_path`` and one row per view (rows sharing an id form one study, in
  row order), or ``id,image_paths`` with the views of a study separated by ``;``. Relative paths are
  resolved against the CSV's folder.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from r2gen.data.annotation import format_problem_list
from r2gen.data.images import ImageDecodeError, load_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
PATHS_SEPARATOR = ";"


class StudyInputError(ValueError):
    """The images or the study list given for prediction are invalid; the message names the file."""


@dataclass(frozen=True)
class StudyInput:
    """One study to report on: an id and the paths of its views."""

    id: str
    image_paths: tuple[Path, ...]


def studies_from_images(paths: Sequence[str | Path], study_id: str | None = None) -> list[StudyInput]:
    """Return one study whose views are ``paths``; its id defaults to the first file's name without suffix."""
    if not paths:
        raise StudyInputError("no image given: pass images=[frontal.png,lateral.png] or input=<folder or CSV>")
    image_paths = tuple(Path(path).expanduser() for path in paths)
    return [StudyInput(study_id or image_paths[0].stem, image_paths)]


def studies_from_folder(folder: Path) -> list[StudyInput]:
    """Return one study per PNG or JPEG file under ``folder``, sorted by path; other files are skipped."""
    folder = Path(folder)
    files = sorted(path for path in folder.rglob("*") if path.is_file() and not path.name.startswith("."))
    images = [path for path in files if path.suffix.lower() in IMAGE_SUFFIXES]
    skipped = [path for path in files if path.suffix.lower() not in IMAGE_SUFFIXES]
    if skipped:
        log.warning("skipped %d file(s) in %s that are not PNG or JPEG, e.g. %s",
                    len(skipped), folder, ", ".join(str(path) for path in skipped[:3]))
    if not images:
        raise StudyInputError(f"{folder}: no PNG or JPEG file found in this folder or below it; "
                              "fix: point input= at the folder that contains the images")
    return [StudyInput(path.relative_to(folder).with_suffix("").as_posix(), (path,)) for path in images]


def studies_from_csv(path: Path) -> list[StudyInput]:
    """Read studies from a CSV with columns ``id,image_path`` (a row per view) or ``id,image_paths``."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = _check_columns(path, reader.fieldnames)
            rows = [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError as error:
        raise StudyInputError(f"{path}: not a UTF-8 text file ({error}); fix: save the CSV as UTF-8") from error

    views: dict[str, list[Path]] = {}
    problems: list[str] = []
    for line, row in rows:
        study_id = (row.get("id") or "").strip()
        cell = (row.get(columns) or "").strip()
        if not study_id or not cell:
            problems.append(f"line {line}: empty 'id' or '{columns}'; fix: fill both cells or delete the row")
            continue
        if columns == "image_paths" and study_id in views:
            problems.append(f"line {line}: id {study_id!r} is repeated; with an 'image_paths' column "
                            "each study is one row, so put all its views in that row separated by ';'")
            continue
        parts = cell.split(PATHS_SEPARATOR) if columns == "image_paths" else [cell]
        views.setdefault(study_id, []).extend(_resolve(path.parent, part) for part in parts if part.strip())
    if problems:
        raise StudyInputError(f"{path}: invalid study list, {len(problems)} problem(s):\n"
                              + format_problem_list(problems))
    if not views:
        raise StudyInputError(f"{path}: the CSV has a header but no study rows")
    return [StudyInput(study_id, tuple(paths)) for study_id, paths in views.items()]


def _check_columns(path: Path, fieldnames: Sequence[str] | None) -> str:
    names = [name.strip() for name in fieldnames or []]
    has_one = "image_path" in names
    has_many = "image_paths" in names
    if "id" not in names or has_one == has_many:
        raise StudyInputError(
            f"{path}: header {names} is invalid; fix: use the columns 'id,image_path' (one row per view) "
            "or 'id,image_paths' (views separated by ';')")
    return "image_path" if has_one else "image_paths"


def _resolve(base: Path, text: str) -> Path:
    candidate = Path(text.strip()).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


def read_studies(source: Path) -> list[StudyInput]:
    """Read studies from a folder of images or from a ``.csv`` study list."""
    source = Path(source).expanduser()
    if source.is_dir():
        return studies_from_folder(source)
    if not source.exists():
        raise StudyInputError(f"{source}: input not found; fix: pass an existing folder of images or a CSV file")
    if source.suffix.lower() != ".csv":
        raise StudyInputError(f"{source}: input must be a folder of images or a .csv study list; "
                              "for a single study pass images=[file,...] instead")
    return studies_from_csv(source)


def check_studies(studies: Sequence[StudyInput], decode_size: int | None = None) -> None:
    """Decode every view once and raise ``StudyInputError`` listing each file that fails.

    ``decode_size`` lets JPEG files decode at a reduced scale (at least that many pixels a side),
    which is enough to prove that the whole file decodes.
    """
    counts = Counter(study.id for study in studies)
    repeated = sorted(study_id for study_id, count in counts.items() if count > 1)
    problems = [f"study id {study_id!r} is used more than once; fix: give each study a unique id"
                for study_id in repeated]
    for study in studies:
        for path in study.image_paths:
            problems.extend(_check_image(study.id, path, decode_size))
    if problems:
        raise StudyInputError(f"{len(problems)} invalid input(s):\n" + format_problem_list(problems))


def _check_image(study_id: str, path: Path, decode_size: int | None) -> list[str]:
    if path.is_dir():
        return [f"study {study_id!r}: {path} is a folder, expected an image file; "
                "fix: pass image files with images=[...], or the folder with input=<folder>"]
    if not path.exists():
        return [f"study {study_id!r}: {path}: image file not found; fix: check the path"]
    try:
        load_image(path, draft_size=decode_size)
    except ImageDecodeError as error:
        return [f"study {study_id!r}: {error}"]
    return []
