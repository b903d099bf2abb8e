"""Build the model, datasets and scorer of a run from its composed Hydra config."""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from r2gen.data.annotation import Study, load_annotation
from r2gen.data.cleaning import clean_report
from r2gen.data.collate import ReportCollator
from r2gen.data.cache import DecodedImageCache
from r2gen.data.dataset import ReportDataset, build_image_transform, transform_fingerprint
from r2gen.data.manifest import dataset_fingerprint
from r2gen.data.validate import validate_studies
from r2gen.evaluation import score_reports
from r2gen.models.r2gengpt import R2GenGPT
from r2gen.models.tuning import (apply_tuning, enable_gradient_checkpointing, format_parameter_table,
                                 frozen_modules, parameter_table)
from r2gen.training.config import DataConfig, TrainerConfig

log = logging.getLogger(__name__)


def load_studies(data: DataConfig, splits: list[str]) -> dict[str, list[Study]]:
    """Load and validate the annotation; bad entries fail here, before any model is built."""
    if not Path(data.root).is_dir():
        raise FileNotFoundError(
            f"data root {data.root} (dataset {data.name}) does not exist. Set R2GEN_DATA_ROOT to the folder "
            f"that contains it, or override data.root=/path/to/{Path(data.root).name}.")
    # Duplicate ids are left to validate_studies, so that on_invalid=skip can skip them too.
    studies = load_annotation(data.annotation_path, splits=splits, check_duplicates=False)
    clean = functools.partial(clean_report, rules=data.cleaning)
    studies, report = validate_studies(studies, data.image_root, clean, on_invalid=data.on_invalid,
                                       decode_images=data.decode_check, splits=splits)
    log.info("data %s: %s", data.name, report.summary())
    return studies


def build_model(cfg: DictConfig, trainer: TrainerConfig | None = None) -> R2GenGPT:
    """Instantiate encoder, LLM and aligner, assemble R2GenGPT, apply the tuning setting and log it."""
    encoder = instantiate(cfg.encoder)
    llm, tokenizer = instantiate(cfg.llm)
    aligner = instantiate(cfg.aligner)(in_features=encoder.num_features, out_features=llm.config.hidden_size)
    prompt = instantiate(cfg.model.prompt)
    model = R2GenGPT(encoder, aligner, llm, tokenizer, prompt=prompt, view_fusion=cfg.model.view_fusion)
    apply_tuning(model, instantiate(cfg.tuning))
    if trainer is not None:
        enable_gradient_checkpointing(model, llm=trainer.gradient_checkpointing_llm,
                                      encoder=trainer.gradient_checkpointing_encoder)
    # After checkpointing: a checkpointed frozen module must stay in train mode for it to apply.
    model.frozen_modules = frozen_modules(model)
    log.info("trainable parameters:\n%s", format_parameter_table(parameter_table(model)))
    return model


def build_loaders(
    studies: dict[str, list[Study]], data: DataConfig, model: R2GenGPT, batch_size: int, eval_batch_size: int,
    num_workers: int, eval_max_samples: int | None = None,
) -> dict[str, DataLoader]:
    """One DataLoader per split; only the training one shuffles (R2GenGPT never shuffles on one GPU)."""
    encoder = model.encoder
    transform = build_image_transform(encoder.image_size, encoder.image_mean, encoder.image_std)
    clean = functools.partial(clean_report, rules=data.cleaning)
    image_cache = open_image_cache(studies, data, transform, encoder) if data.cache else None
    loaders = {}
    for split, split_studies in studies.items():
        training = split == "train"
        if split == "val" and eval_max_samples is not None:
            split_studies = split_studies[:eval_max_samples]
        dataset = ReportDataset(split_studies, data.image_root, transform, clean, image_cache,
                                image_ablation=None if training else data.image_ablation)
        collator = ReportCollator(model.tokenizer, data.max_target_tokens, with_targets=training)
        loaders[split] = DataLoader(dataset, batch_size=batch_size if training else eval_batch_size,
                                    shuffle=training, collate_fn=collator, num_workers=num_workers,
                                    persistent_workers=num_workers > 0)
    return loaders


def open_image_cache(studies: dict[str, list[Study]], data: DataConfig, transform: Any,
                     encoder: Any) -> DecodedImageCache:
    """Open (or build once) the decoded-image cache for every image of ``studies``.

    The cache is keyed by the dataset fingerprint and the transform, so a changed annotation or
    encoder input size builds a new one.
    """
    paths = sorted({path for split in studies.values() for study in split for path in study.image_paths})
    return DecodedImageCache.open_or_build(
        data.image_root, paths, transform, dataset_fingerprint(data.annotation_path),
        transform_fingerprint(encoder.image_size, encoder.image_mean, encoder.image_std))


def build_scorer(evaluation: Any, training_reports: list[str], bootstrap: bool = True) -> Any:
    """Return a function that scores ``{"id", "reference", "hypothesis"}`` records."""
    config = evaluation if bootstrap else replace(evaluation, bootstrap_samples=0)
    return functools.partial(score_reports, config=config, training_reports=training_reports)
