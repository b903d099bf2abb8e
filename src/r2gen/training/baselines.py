"""Trivial report generators to compare every result with, scored exactly like a run's test split.

Each system copies cleaned training reports:

- ``most_frequent``: the training report that occurs most often, for every study (a tie goes to the
  report that appears first in the training split).
- ``random``: a training report drawn uniformly with replacement for each study, from a seeded generator.
- ``nearest_neighbour``: the report of the training study with the highest cosine similarity of encoder
  features. A study's feature is the encoder's token grid, fused over views as the model fuses them
  (``fuse_views``), then averaged over tokens.

Results are cached as JSON under ``$R2GEN_CACHE_DIR/baselines/``. The key covers the dataset
fingerprint, split, cleaning rules, encoder config, evaluation config and baseline settings.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from r2gen.data.annotation import Study, load_annotation
from r2gen.data.cleaning import clean_report
from r2gen.data.dataset import ReportDataset, build_image_transform
from r2gen.data.manifest import dataset_fingerprint
from r2gen.evaluation import EvaluationConfig, score_reports
from r2gen.models.llm import cache_dir
from r2gen.models.r2gengpt import VIEW_FUSIONS, fuse_views
from r2gen.training.baseline_tables import baselines_markdown, comparison_table, margins, run_summary_scalars
from r2gen.training.build import load_studies
from r2gen.training.config import DataConfig
from r2gen.training.io import write_json_atomic, write_jsonl_atomic, write_text_atomic

log = logging.getLogger(__name__)

SYSTEMS = ("most_frequent", "random", "nearest_neighbour")
TEXT_ONLY_SYSTEMS = ("most_frequent", "random")
# Part of the cache key: bump it whenever a system's output or the scoring call changes.
CACHE_VERSION = 1


class BaselineDataError(ValueError):
    """The data cannot support the requested baselines (for example, no training studies)."""


@dataclass
class BaselineSettings:
    """Baseline systems, split and options; ``python -m r2gen.baselines`` and runs share these defaults."""

    split: str = "test"
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    seed: int = 0  # random baseline
    view_fusion: str = "mean"  # as model.view_fusion
    batch_size: int = 16  # studies per encoder forward pass
    num_workers: int = 0  # DataLoader worker processes that decode images

    def __post_init__(self) -> None:
        self.systems = list(self.systems)
        unknown = [name for name in self.systems if name not in SYSTEMS]
        if unknown or not self.systems:
            raise ValueError(f"baseline systems {self.systems} are invalid; choose one or more of {list(SYSTEMS)}")
        if self.view_fusion not in VIEW_FUSIONS:
            raise ValueError(f"view_fusion {self.view_fusion!r} is invalid; expected one of {list(VIEW_FUSIONS)}")
        if self.split == "train":
            raise ValueError("baselines copy training reports, so split=train would score them on themselves; "
                             "choose val or test")
        if self.batch_size < 1 or self.num_workers < 0:
            raise ValueError(f"batch_size must be at least 1 and num_workers at least 0, got {self.batch_size} "
                             f"and {self.num_workers}")

    def key(self) -> dict[str, Any]:
        """Return the fields that change the results (batch size and workers do not)."""
        return {"split": self.split, "systems": sorted(self.systems), "seed": self.seed,
                "view_fusion": self.view_fusion}

    @property
    def needs_images(self) -> bool:
        return "nearest_neighbour" in self.systems


# ----- the systems ---------------------------------------------------------------------------------
def most_frequent_report(reports: Sequence[str]) -> str:
    """Return the most frequent report; a tie goes to the one that appears first."""
    if not reports:
        raise ValueError("most_frequent_report needs at least one training report")
    counts = Counter(reports)
    return max(counts, key=lambda report: counts[report])  # max keeps the first of equal keys in insertion order


def random_reports(reports: Sequence[str], count: int, seed: int) -> list[str]:
    """Draw ``count`` reports uniformly with replacement with ``numpy.random.default_rng(seed)``."""
    if not reports:
        raise ValueError("random_reports needs at least one training report")
    indices = np.random.default_rng(seed).integers(0, len(reports), size=count)
    return [reports[index] for index in indices]


def nearest_neighbour_indices(train_features: torch.Tensor, query_features: torch.Tensor,
                              chunk_size: int = 256) -> torch.Tensor:
    """Return, per query row, the index of the training row with the highest cosine similarity.

    A tie goes to the lowest index. A zero feature vector has similarity 0 with everything. Queries
    are compared in chunks, so memory grows with ``chunk_size * len(train_features)``, not with all pairs.
    """
    train = torch.nn.functional.normalize(train_features.double(), dim=1)
    query = torch.nn.functional.normalize(query_features.double(), dim=1)
    return torch.cat([(chunk @ train.T).argmax(dim=1) for chunk in query.split(chunk_size)])


def _collate_views(items: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.cat([item["images"] for item in items])
    return pixels, torch.tensor([item["images"].shape[0] for item in items])


@torch.no_grad()
def study_features(encoder: torch.nn.Module, dataset: ReportDataset, view_fusion: str, batch_size: int,
                   num_workers: int = 0) -> torch.Tensor:
    """Encode every study of ``dataset`` into one vector: tokens fused over views, then averaged over tokens."""
    encoder.eval()
    device = next(encoder.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=_collate_views, num_workers=num_workers)
    features = []
    for pixels, view_counts in loader:
        tokens = encoder(pixels.to(device)).float()
        features.append(fuse_views(tokens, view_counts.to(device), view_fusion).mean(dim=1).cpu())
    return torch.cat(features)


# ----- data ----------------------------------------------------------------------------------------
def load_baseline_studies(data: DataConfig, settings: BaselineSettings) -> dict[str, list[Study]]:
    """Load the training split and ``settings.split``, validated as a run validates them.

    Text-only systems need no images, so then only the reports are checked and images may be absent.
    """
    splits = ["train", settings.split]
    if not Path(data.annotation_path).is_file():
        raise BaselineDataError(f"annotation file {data.annotation_path} of dataset {data.name} not found; set "
                                "R2GEN_DATA_ROOT or data.root to the folder that contains it")
    annotation = load_annotation(data.annotation_path, splits=splits)
    empty = [split for split in splits if not annotation[split]]
    if empty:
        raise BaselineDataError(
            f"{data.annotation_path}: split(s) {empty} have no studies; the baselines copy training reports "
            f"and score them on '{settings.split}', so both splits need studies. Build the full annotation "
            f"(python -m r2gen.data.prepare {data.name}) or point data.annotation at one that has them")
    if not settings.needs_images:
        return _check_reports(annotation, data)
    try:
        return load_studies(data, splits)
    except (FileNotFoundError, ValueError) as error:
        raise BaselineDataError(
            f"{error}\nnearest_neighbour needs the images of both splits; with reports only, compute the "
            f"text baselines with systems=[{','.join(TEXT_ONLY_SYSTEMS)}]") from error


def _check_reports(annotation: dict[str, list[Study]], data: DataConfig) -> dict[str, list[Study]]:
    empty = [f"split '{split}', id '{study.id}'" for split, studies in annotation.items() for study in studies
             if not clean_report(study.report, rules=data.cleaning).strip()]
    if empty:
        raise BaselineDataError(f"{data.annotation_path}: {len(empty)} report(s) are empty after cleaning "
                                f"({data.cleaning} rules), first: {empty[:5]}; fix or drop those entries")
    return annotation


# ----- computing and caching ------------------------------------------------------------------------
def predict_baselines(studies: dict[str, list[Study]], data: DataConfig, encoder_node: Any,
                      settings: BaselineSettings) -> dict[str, list[str]]:
    """Return each system's hypotheses for ``settings.split``, in split order."""
    clean = functools.partial(clean_report, rules=data.cleaning)
    training = [clean(study.report) for study in studies["train"]]
    count = len(studies[settings.split])
    hypotheses: dict[str, list[str]] = {}
    if "most_frequent" in settings.systems:
        hypotheses["most_frequent"] = [most_frequent_report(training)] * count
    if "random" in settings.systems:
        hypotheses["random"] = random_reports(training, count, settings.seed)
    if "nearest_neighbour" in settings.systems:
        encoder = instantiate(encoder_node).to("cuda" if torch.cuda.is_available() else "cpu")
        transform = build_image_transform(encoder.image_size, encoder.image_mean, encoder.image_std)
        features = {split: study_features(encoder, ReportDataset(studies[split], data.image_root, transform, clean),
                                          settings.view_fusion, settings.batch_size, settings.num_workers)
                    for split in ("train", settings.split)}
        nearest = nearest_neighbour_indices(features["train"], features[settings.split])
        hypotheses["nearest_neighbour"] = [training[index] for index in nearest.tolist()]
    return hypotheses


def compute_baselines(data: DataConfig, encoder_node: Any, evaluation: EvaluationConfig,
                      settings: BaselineSettings) -> dict[str, Any]:
    """Predict with every requested system and score it with ``score_reports`` as a run's test does."""
    start = time.perf_counter()
    studies = load_baseline_studies(data, settings)
    clean = functools.partial(clean_report, rules=data.cleaning)
    training = [clean(study.report) for study in studies["train"]]
    ids = [study.id for study in studies[settings.split]]
    references = [clean(study.report) for study in studies[settings.split]]
    systems: dict[str, Any] = {}
    for name, hypotheses in predict_baselines(studies, data, encoder_node, settings).items():
        log.info("scoring baseline %s on %d %s studies", name, len(ids), settings.split)
        records = [{"id": i, "reference": r, "hypothesis": h} for i, r, h in zip(ids, references, hypotheses)]
        systems[name] = {"metrics": score_reports(records, evaluation, training), "hypotheses": hypotheses}
    return {"data": data.name, "split": settings.split, "studies": len(ids), "training_reports": len(training),
            "ids": ids, "references": references, "systems": systems, "seconds": time.perf_counter() - start}


def cache_key(data: DataConfig, encoder_node: Any, evaluation: EvaluationConfig,
              settings: BaselineSettings) -> dict[str, Any]:
    """Return everything the baseline results depend on, as plain JSON values."""
    encoder = OmegaConf.to_container(encoder_node, resolve=True) if isinstance(encoder_node, DictConfig) \
        else dict(encoder_node)
    return {"version": CACHE_VERSION, "fingerprint": dataset_fingerprint(data.annotation_path),
            "data": data.name, "cleaning": data.cleaning, "settings": settings.key(),
            # The encoder only matters to the nearest-neighbour system.
            "encoder": encoder if settings.needs_images else None, "evaluation": evaluation.to_dict()}


def cached_baselines(data: DataConfig, encoder_node: Any, evaluation: EvaluationConfig,
                     settings: BaselineSettings, refresh: bool = False) -> dict[str, Any]:
    """Return the baselines from the cache, computing and storing them on a miss (or when ``refresh``)."""
    key = cache_key(data, encoder_node, evaluation, settings)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:20]
    path = cache_dir() / "baselines" / f"{data.name}-{settings.split}-{digest}.json"
    if path.is_file() and not refresh:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            log.warning("ignoring unreadable baseline cache %s (%s); recomputing", path, error)
        else:
            if document.get("key") == key:
                log.info("baselines for %s/%s read from %s", data.name, settings.split, path)
                return document
    document = {**compute_baselines(data, encoder_node, evaluation, settings), "key": key, "cache_path": str(path)}
    write_json_atomic(path, document)
    log.info("baselines for %s/%s computed in %.1f s and cached in %s", data.name, settings.split,
             document["seconds"], path)
    return document


# ----- the hook for runs ----------------------------------------------------------------------------
def baselines_for_run(cfg: DictConfig, split: str = "test") -> dict[str, Any]:
    """Return a run's baselines on ``split`` (cached), without hypotheses, or a note why there are none.

    Missing training data gives ``{"status": "unavailable", "reason": ...}`` instead of an error, so
    an evaluation-only run on a test-only annotation still finishes.
    """
    data: DataConfig = instantiate(cfg.data)
    settings = BaselineSettings(split=split, view_fusion=cfg.model.view_fusion)
    try:
        document = cached_baselines(data, cfg.encoder, instantiate(cfg.evaluation), settings)
    except BaselineDataError as error:
        log.warning("no baselines for this run: %s", error)
        return {"status": "unavailable", "reason": str(error)}
    systems = {name: entry["metrics"] for name, entry in document["systems"].items()}
    return {"status": "completed", "split": split, "fingerprint": document["key"]["fingerprint"],
            "cache_path": document["cache_path"], "systems": systems}


def attach_baselines(results: dict[str, Any], cfg: DictConfig, tracker: Any, step: int) -> None:
    """Add the baselines and the run's margins over them to ``results``, log them, send them to the tracker.

    A failure here is logged and recorded as ``{"status": "failed"}`` instead of raised, so that a
    finished run still writes its own results.
    """
    try:
        baselines = baselines_for_run(cfg)
    except (OSError, RuntimeError, ValueError) as error:
        log.exception("computing the baselines failed; the run's results are kept without them")
        baselines = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    results["baselines"] = baselines
    if baselines["status"] != "completed":
        return
    baselines["margins"] = margins(results["test"], baselines["systems"])
    log.info("test metrics beside the baselines (same data and split):\n%s",
             comparison_table(results["test"], baselines["systems"]))
    scalars = run_summary_scalars(baselines["systems"], results["test"])
    # The run summary also gets the run's test diagnostics, as test/diagnostics/<name>.
    diagnostics = results["test"].get("diagnostics") or {}
    scalars.update({f"test/diagnostics/{key}": float(value) for key, value in diagnostics.items()
                    if isinstance(value, (int, float)) and not isinstance(value, bool)})
    tracker.log(scalars, step=step)
    tracker.set_summary(scalars)


# ----- outputs of `python -m r2gen.baselines` -------------------------------------------------------
def write_baseline_outputs(document: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``baselines.md``, ``baselines.json`` (metrics only) and one predictions JSONL per system."""
    out_dir = Path(out_dir)
    paths = {"markdown": out_dir / "baselines.md", "json": out_dir / "baselines.json"}
    summary = {key: value for key, value in document.items() if key not in ("ids", "references", "systems")}
    summary["systems"] = {name: entry["metrics"] for name, entry in document["systems"].items()}
    write_json_atomic(paths["json"], summary)
    write_text_atomic(paths["markdown"], baselines_markdown(document) + "\n")
    for name, entry in document["systems"].items():
        rows = [{"id": i, "reference": r, "hypothesis": h}
                for i, r, h in zip(document["ids"], document["references"], entry["hypotheses"])]
        paths[name] = out_dir / "predictions" / f"{name}.jsonl"
        write_jsonl_atomic(paths[name], rows)
    return paths
