"""Generation over a DataLoader on every process, gathered into one deduplicated list.

Accelerate shards an evaluation loader so that every rank gets the same number of batches, and it
fills the last round with samples repeated from the start of the split. R2GenGPT scored those
duplicates and scored each rank's shard separately. Here each batch's predictions are gathered from
all ranks with ``gather_for_metrics``, which drops that padding in the last batch. The records are
then deduplicated by id as a second guard, and the result must cover the split exactly.
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

# The keys that scoring and the predictions files use; records may carry more (``image_path``).
RECORD_KEYS = ("id", "reference", "hypothesis")


def predict_loader(
    accelerator: Accelerator, model: torch.nn.Module, loader: DataLoader, generation: GenerationConfig
) -> list[dict[str, str]]:
    """Generate for the loader's whole dataset on all ranks and return one record per study.

    Every rank returns the same list, in dataset order. A record has ``id``, ``reference``,
    ``hypothesis`` and ``image_path`` (the study's first view, for sample tables).
    """
    model.eval()
    gathered: list[dict[str, str]] = []
    progress = tqdm(loader, desc="generate", disable=not accelerator.is_main_process, leave=False)
    for batch in progress:
        with accelerator.autocast():
            hypotheses = model.generate(batch["pixel_values"], batch["view_counts"], generation)
        local = [{"id": i, "reference": r, "hypothesis": h}
                 for i, r, h in zip(batch["ids"], batch["references"], hypotheses)]
        # Per batch, as Accelerate intends: only then does it know which rows of the last batch are padding.
        gathered.extend(accelerator.gather_for_metrics(local, use_gather_object=True))
    dataset = loader.dataset
    records = order_and_check(gathered, expected_ids=[study.id for study in dataset.studies])
    first_views = {study.id: str(dataset.image_root / study.image_paths[0]) for study in dataset.studies}
    return [{**record, "image_path": first_views[record["id"]]} for record in records]


def order_and_check(records: list[dict[str, str]], expected_ids: list[str]) -> list[dict[str, str]]:
    """Deduplicate ``records`` by id, order them as ``expected_ids``, and fail if any id is missing."""
    by_id: dict[str, dict[str, str]] = {}
    for record in records:
        by_id.setdefault(record["id"], record)
    duplicates = len(records) - len(by_id)
    if duplicates:
        log.warning("dropped %d duplicated predictions that gather_for_metrics left in", duplicates)
    missing = [i for i in expected_ids if i not in by_id]
    unexpected = sorted(set(by_id) - set(expected_ids))
    if missing or unexpected:
        raise RuntimeError(f"gathered predictions do not cover the split: missing ids {missing[:10]}, "
                           f"unexpected ids {unexpected[:10]} ({len(missing)} and {len(unexpected)} in all)")
    return [by_id[i] for i in expected_ids]


def scoring_records(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Return the records with only ``id``, ``reference`` and ``hypothesis``."""
    return [{key: record[key] for key in RECORD_KEYS} for record in records]


def selection_score(metrics: dict[str, Any], weights: dict[str, float]) -> float:
    """Weighted sum of metrics used to pick the best checkpoint (default 0.5 BLEU-4 + 0.5 CIDEr)."""
    score = 0.0
    for name, weight in weights.items():
        value = metrics.get(name)
        if value is None:
            raise KeyError(f"selection metric {name!r} is not among the computed metrics "
                           f"{sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))}; "
                           "set trainer.selection to weights over those names")
        score += weight * float(value)
    return score
