"""The work behind ``python -m r2gen.predict``: choose the studies, check them, generate, write the rows."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from r2gen.training.inference import generation_settings, load_generator, prediction_rows, write_prediction_rows
from r2gen.training.study_inputs import (StudyInput, StudyInputError, check_studies, read_studies,
                                         studies_from_images)

log = logging.getLogger(__name__)

DEFAULT_OUTPUT = "predictions.jsonl"
# JPEG files are check-decoded at reduced scale, down to this many pixels a side.
CHECK_DECODE_SIZE = 256


def select_studies(cfg: DictConfig) -> list[StudyInput]:
    """Return the studies named by ``images`` (one study) or ``input`` (a folder or CSV); exactly one is set."""
    if (cfg.images is None) == (cfg.input is None):
        raise StudyInputError("pass exactly one of images=[frontal.png,...] (one study) or "
                              "input=<folder or CSV> (many studies)")
    if cfg.images is not None:
        images = [cfg.images] if isinstance(cfg.images, str) else list(cfg.images)
        return studies_from_images(images, cfg.study_id)
    return read_studies(Path(cfg.input))


def output_path(cfg: DictConfig) -> Path | None:
    """Return where to write the JSONL: ``output``, else predictions.jsonl for ``input=``, else nothing."""
    if cfg.output is not None:
        return Path(cfg.output).expanduser()
    return Path(DEFAULT_OUTPUT) if cfg.input is not None else None


def run_prediction(cfg: DictConfig) -> tuple[list[dict[str, Any]], Path | None]:
    """Generate a report for every selected study; return the rows and the JSONL path written (if any)."""
    if cfg.run_dir is None:
        raise StudyInputError("run_dir is not set; pass run_dir=<run directory or exported model folder>")
    studies = select_studies(cfg)
    # Checked before the model loads, which can take minutes for a 7B LLM.
    if cfg.check_images:
        check_studies(studies, decode_size=CHECK_DECODE_SIZE)
    generator = load_generator(Path(cfg.run_dir), cfg.checkpoint, cfg.device, cfg.precision,
                               list(cfg.config_overrides))
    overrides = OmegaConf.to_container(cfg.generation, resolve=True)
    settings = generation_settings(generator.source.config, overrides)
    log.info("generating %d stud%s with %s", len(studies), "y" if len(studies) == 1 else "ies", settings)
    reports = generator.generate(studies, settings, cfg.batch_size, progress=cfg.progress, seed=cfg.seed)
    rows = prediction_rows(studies, reports, settings, generator.source)
    path = output_path(cfg)
    if path is not None:
        write_prediction_rows(path, rows)
        log.info("wrote %d report(s) to %s", len(rows), path)
    return rows, path
