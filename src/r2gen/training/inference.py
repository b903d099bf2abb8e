"""Load a trained run or an exported model folder and generate reports for new studies.

A run directory (written by ``r2gen.run``) contains ``config.yaml`` and ``checkpoints/best.safetensors``.
An exported folder (written by ``r2gen.export``) contains ``config.yaml``, ``trainable.safetensors`` and
``r2gen_model.json``. Either way the frozen encoder and LLM are rebuilt from the config
(``encoder.path``, ``llm.path``) and only the trainable weights come from the checkpoint, loaded with
strict key checks. Nothing here needs the training dataset.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from r2gen.data.dataset import build_image_transform
from r2gen.data.images import load_image
from r2gen.models.r2gengpt import GenerationConfig, R2GenGPT
from r2gen.training.build import build_model
from r2gen.training.checkpoint import load_trainable
from r2gen.training.io import write_jsonl_atomic
from r2gen.training.study_inputs import StudyInput

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
BEST_CHECKPOINT = Path("checkpoints") / "best.safetensors"
LAST_CHECKPOINT = Path("checkpoints") / "last" / "trainable.safetensors"
EXPORT_MANIFEST = "r2gen_model.json"
EXPORT_CHECKPOINT = "trainable.safetensors"
PRECISIONS = ("fp32", "bf16")


class ModelSourceError(ValueError):
    """A run directory or exported model folder cannot be loaded; the message names the file."""


@dataclass
class ModelSource:
    """A loadable model: its folder, kind ("run" or "export"), config, checkpoint and export manifest."""

    path: Path
    kind: str
    config: DictConfig
    checkpoint: Path
    manifest: dict[str, Any] | None = None


def locate_model(path: Path, checkpoint: Path | None = None) -> ModelSource:
    """Find the config and checkpoint of a run directory or an exported model folder.

    A run without ``checkpoints/best.safetensors`` (for example one stopped before its first
    validation) fails unless ``checkpoint`` names the file to use.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelSourceError(f"{path}: model folder not found; fix: pass a run directory written by "
                               "r2gen.run or a folder written by r2gen.export")
    manifest_path = path / EXPORT_MANIFEST
    kind = "export" if manifest_path.is_file() else "run"
    config = _load_config(path / CONFIG_FILE)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if kind == "export" else None
    if checkpoint is not None:
        checkpoint = Path(checkpoint).expanduser()
        if not checkpoint.is_file():
            raise ModelSourceError(f"{checkpoint}: checkpoint file not found; fix: check checkpoint=")
    elif kind == "export":
        checkpoint = path / EXPORT_CHECKPOINT
        if not checkpoint.is_file():
            raise ModelSourceError(f"{checkpoint}: the exported folder has no weights file; export it again")
    else:
        checkpoint = path / BEST_CHECKPOINT
        if not checkpoint.is_file():
            raise ModelSourceError(
                f"{checkpoint}: not found, so {path} has no best checkpoint (the run has not finished a "
                f"validation). Fix: pass checkpoint={path / LAST_CHECKPOINT} to use the last saved weights "
                "instead, or train the run to completion.")
    return ModelSource(path, kind, config, checkpoint, manifest)


def _load_config(path: Path) -> DictConfig:
    if not path.is_file():
        raise ModelSourceError(f"{path}: not found, so {path.parent} is neither an r2gen run directory nor "
                               "an exported model folder; fix: pass the folder that contains config.yaml")
    config = OmegaConf.load(path)
    missing = [key for key in ("encoder", "aligner", "llm", "tuning", "model", "generation") if key not in config]
    if not isinstance(config, DictConfig) or missing:
        raise ModelSourceError(f"{path}: not an r2gen model config, missing the nodes {missing}")
    return config


_ABSENT = object()


def apply_config_overrides(config: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Return ``config`` with ``key=value`` overrides of existing keys, e.g. ``llm.path=/models/llama``."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, separator, _ = item.partition("=")
        if not separator or OmegaConf.select(config, key, default=_ABSENT) is _ABSENT:
            raise ModelSourceError(f"invalid config override {item!r}: expected key=value with a key that "
                                   "exists in the model's config.yaml, e.g. llm.path=/models/Llama-2-7b-chat-hf")
        # from_dotlist parses the value as YAML, so numbers, booleans and null keep their types.
        value = OmegaConf.select(OmegaConf.from_dotlist([item]), key)
        OmegaConf.update(config, key, value, merge=False)
    return config


def resolve_device(name: str) -> torch.device:
    """Map "auto" to CUDA when available, else CPU; reject "cuda" on a machine without a GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name} was requested but CUDA is not available; use device=cpu")
    return device


def resolve_precision(config: DictConfig, device: torch.device, precision: str | None) -> str:
    """Pick fp32 or bf16: as requested, else the run's precision on a GPU and fp32 on a CPU."""
    if precision is None:
        trained = OmegaConf.select(config, "trainer.precision", default="fp32")
        precision = trained if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"invalid precision {precision!r}: use one of {list(PRECISIONS)}")
    return precision


def generation_settings(config: DictConfig, overrides: Mapping[str, Any] | None = None) -> GenerationConfig:
    """Return the model's decoding settings with every non-null entry of ``overrides`` applied."""
    settings: GenerationConfig = instantiate(config.generation)
    changes = {key: value for key, value in (overrides or {}).items() if value is not None}
    known = {field.name for field in dataclasses.fields(GenerationConfig)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown generation setting(s) {unknown}; valid ones are {sorted(known)}")
    return dataclasses.replace(settings, **changes)


def tokenizer_fingerprint(tokenizer: Any) -> dict[str, Any]:
    """Return the vocabulary size, special token ids and a SHA-256 of the vocabulary."""
    vocabulary = sorted(tokenizer.get_vocab().items())
    digest = hashlib.sha256(json.dumps(vocabulary, ensure_ascii=False).encode("utf-8")).hexdigest()
    return {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
            "vocab_sha256": digest}


def check_tokenizer(tokenizer: Any, expected: Mapping[str, Any], source: Path) -> None:
    """Raise ``ModelSourceError`` when the loaded tokenizer differs from the one recorded at export."""
    actual = tokenizer_fingerprint(tokenizer)
    differences = {key: (expected[key], actual.get(key)) for key in expected if expected[key] != actual.get(key)}
    if differences:
        raise ModelSourceError(
            f"{source / EXPORT_MANIFEST}: the tokenizer loaded from the llm config differs from the one the model "
            f"was exported with (expected, loaded): {differences}. Fix: point llm.path at the original LLM.")


@dataclass
class ReportGenerator:
    """A model in eval mode on its device, with the image transform its encoder expects."""

    model: R2GenGPT
    source: ModelSource
    device: torch.device
    precision: str
    transform: Callable[[Any], torch.Tensor]

    def load_views(self, study: StudyInput) -> torch.Tensor:
        """Decode and transform the views of one study into a tensor [views, 3, H, W]."""
        return torch.stack([self.transform(load_image(path)) for path in study.image_paths])

    @torch.no_grad()
    def generate_batch(self, studies: Sequence[StudyInput], settings: GenerationConfig) -> list[str]:
        """Generate one report per study of a batch; studies may have different numbers of views."""
        views = [self.load_views(study) for study in studies]
        pixel_values = torch.cat(views).to(self.device)
        view_counts = torch.tensor([len(item) for item in views], dtype=torch.long, device=self.device)
        # NOTE: tested on CPU only; CUDA placement and bf16 autocast have not been run on a GPU.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self.model.generate(pixel_values, view_counts, settings)

    def generate(self, studies: Sequence[StudyInput], settings: GenerationConfig, batch_size: int = 4,
                 progress: bool = True, seed: int = 0) -> list[str]:
        """Generate reports for ``studies`` in batches of ``batch_size``, in input order.

        ``seed`` seeds torch's generator once before the first batch, so sampled decoding
        (``do_sample=true``) repeats for the same input, batch size and device.
        """
        if batch_size < 1:
            raise ValueError(f"invalid batch_size {batch_size}: it must be at least 1")
        torch.manual_seed(seed)
        batches = [studies[start:start + batch_size] for start in range(0, len(studies), batch_size)]
        reports: list[str] = []
        start = time.perf_counter()
        for batch in tqdm(batches, desc="generate", unit="batch", disable=not progress):
            reports.extend(self.generate_batch(batch, settings))
        elapsed = time.perf_counter() - start
        log.info("generated %d report(s) in %.1f s (%.2f studies/s)", len(reports), elapsed,
                 len(reports) / max(elapsed, 1e-9))
        return reports


def load_generator(path: Path, checkpoint: Path | None = None, device: str = "auto", precision: str | None = None,
                   config_overrides: Sequence[str] = ()) -> ReportGenerator:
    """Build the model of a run directory or exported folder, load its trainable weights strictly, and
    move it to ``device`` in eval mode."""
    source = locate_model(path, checkpoint)
    source.config = apply_config_overrides(source.config, config_overrides)
    target = resolve_device(device)
    model = build_model(source.config)
    if source.manifest is not None:
        check_tokenizer(model.tokenizer, source.manifest["tokenizer"], source.path)
    load_trainable(model, source.checkpoint)
    model.to(target).eval()
    encoder = model.encoder
    transform = build_image_transform(encoder.image_size, encoder.image_mean, encoder.image_std)
    chosen = resolve_precision(source.config, target, precision)
    log.info("loaded %s %s with weights %s on %s (%s)", source.kind, source.path, source.checkpoint, target, chosen)
    return ReportGenerator(model, source, target, chosen, transform)


def prediction_rows(studies: Sequence[StudyInput], reports: Sequence[str], settings: GenerationConfig,
                    source: ModelSource) -> list[dict[str, Any]]:
    """Return one JSON-ready row per study with its report, the decoding settings and the weights used."""
    generation = dataclasses.asdict(settings)
    return [{"id": study.id, "image_paths": [str(path) for path in study.image_paths], "report": report,
             "generation": generation, "model": str(source.path), "checkpoint": str(source.checkpoint)}
            for study, report in zip(studies, reports, strict=True)]


def write_prediction_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write prediction rows as JSONL, atomically."""
    write_jsonl_atomic(Path(path), rows)
