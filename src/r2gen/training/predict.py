"""Generation over a DataLoader on every process, gathered into one deduplicated list.

A DistributedSampler pads the last round with repeated samples so that every rank gets the same
number of batches. R2GenGPT scored those duplicates and scored each rank's shard separately. Here
every rank's predictions are gathered, Accelerate's ``gather_for_metrics`` drops the padding, the
records are deduplicated by id as a second guard, and the result must cover the split exactly.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from r2gen.models.r2gengpt import GenerationConfig

log = logging.getLogger(__name__)


def predict_loader(
    accelerator: Accelerator, model: torch.nn.Module, loader: DataLoader, generation: GenerationConfig
) -> list[dict[str, str]]:
    """Return ``{"id", "reference", "hypothesis"}`` per study of the loader's dataset, in dataset order."""
    model.eval()
    local: list[dict[str, str]] = []
    progress = tqdm(loader, desc="generate", disable=not accelerator.is_main_process, leave=False)
    for batch in progress:
        with accelerator.autocast():
            hypotheses = model.generate(batch["pixel_values"], batch["view_counts"], generation)
        local.extend({"id": i, "reference": r, "hypothesis": h}
                     for i, r, h in zip(batch["ids"], batch["references"], hypotheses))
    gathered = accelerator.gather_for_metrics(local, use_gather_object=True)
    return order_and_check(gathered, expected_ids=[study.id for study in loader.dataset.studies])


def order_and_check(records: list[dict[str, str]], expected_ids: list[str]) -> list[dict[str, str]]:
    """Deduplicate ``records`` by id, order them as ``expected_ids``, and fail if any id is missing."""
    by_id: dict[str, dict[str, str]] = {}
    for record in records:
        by_id.setdefault(record["id"], record)
    duplicates = len(records) - len(by_id)
    if duplicates:
        log.info("dropped %d duplicated predictions added by distributed sampling", duplicates)
    missing = [i for i in expected_ids if i not in by_id]
    unexpected = sorted(set(by_id) - set(expected_ids))
    if missing or unexpected:
        raise RuntimeError(f"gathered predictions do not cover the split: missing {missing[:10]}, "
                           f"unexpected {unexpected[:10]}")
    return [by_id[i] for i in expected_ids]


def selection_score(metrics: dict[str, Any], weights: dict[str, float]) -> float:
    """Weighted sum of metrics used to pick the best checkpoint (default 0.5 BLEU-4 + 0.5 CIDEr)."""
    score = 0.0
    for name, weight in weights.items():
        value = metrics.get(name)
        if value is None:
            raise KeyError(f"selection metric {name!r} is not among the computed metrics "
                           f"{sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))}")
        score += weight * float(value)
    return score
