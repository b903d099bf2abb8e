"""Builders for the inference tests: a small image dataset and a saved run of the tiny model.

The saved run has what ``r2gen.run`` leaves behind and inference reads: the resolved
``config.yaml``, ``checkpoints/best.safetensors`` (trainable-only weights), ``metrics.json`` and
``predictions/test.jsonl``. It is built from the library instead of by training, so the tests take
seconds. The trainable weights are set to seeded random values so that the aligner and the LoRA
adapters change the output, because fresh LoRA B matrices are zero and would hide a merge error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from r2gen.training.build import build_model
from r2gen.training.checkpoint import save_trainable

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

# (id, number of views, split); the first test study has two views.
STUDIES = [("train-a", 1, "train"), ("val-a", 1, "val"), ("test-a", 2, "test"), ("test-b", 1, "test"),
           ("test-c", 1, "test")]
TEST_REPORTS = {
    "test-a": "the heart is normal in size . no pleural effusion or pneumothorax .",
    "test-b": "there is a large right pleural effusion . the lungs are otherwise clear .",
    "test-c": "mild cardiomegaly . no focal consolidation .",
}
# Hypotheses chosen so each BLEU-4 is known: identical, partly overlapping, and empty.
TEST_HYPOTHESES = {
    "test-a": TEST_REPORTS["test-a"],
    "test-b": "there is a small left pleural effusion . the lungs are otherwise clear .",
    "test-c": "",
}


def write_image(path: Path, seed: int, mode: str = "RGB", size: tuple[int, int] = (96, 80)) -> Path:
    """Write a seeded random image: RGB PNG or JPEG by suffix, or 16-bit grayscale PNG with mode "I;16"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        pixels = rng.integers(0, 4096, size=(size[1], size[0]), dtype=np.uint16)
        Image.fromarray(pixels).save(path)
    else:
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(path)
    return path


def make_dataset(root: Path) -> Path:
    """Write an R2Gen-layout dataset (annotation.json and images/) under ``root`` and return ``root``."""
    annotation: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for number, (study_id, views, split) in enumerate(STUDIES):
        paths = []
        for view in range(views):
            suffix, mode = (".jpg", "RGB") if view == 1 else (".png", "I;16" if number % 2 else "RGB")
            relative = f"{study_id}/{view}{suffix}"
            write_image(root / "images" / relative, seed=10 * number + view, mode=mode)
            paths.append(relative)
        report = TEST_REPORTS.get(study_id, "no acute cardiopulmonary abnormality .")
        annotation[split].append({"id": study_id, "report": report, "image_path": paths, "split": split})
    (root / "annotation.json").write_text(json.dumps(annotation), encoding="utf-8")
    return root


def compose_run_config(data_root: Path, tuning: str = "lora", extra: list[str] | None = None) -> DictConfig:
    """Compose the repo's config for the tiny encoder and LLM with greedy, short decoding."""
    overrides = [
        "encoder=tiny", "llm=tiny", f"tuning={tuning}", "data=covid_cxr", f"data.root={data_root}",
        "data.min_new_tokens=2", "data.max_new_tokens=6", "generation.num_beams=1",
        "generation.repetition_penalty=1.0", "generation.length_penalty=1.0", *(extra or []),
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose(config_name="config", overrides=overrides)
    # A run writes its config resolved, so interpolations such as ${data.max_new_tokens} are gone.
    return OmegaConf.create(OmegaConf.to_container(config, resolve=True))


def randomize_trainable(model: torch.nn.Module, seed: int = 1, scale: float = 0.5) -> None:
    """Set every trainable parameter to seeded normal values times ``scale``, as training would change them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, parameter in sorted(model.named_parameters()):
            if parameter.requires_grad:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)


def make_run(run_dir: Path, data_root: Path, tuning: str = "lora") -> Path:
    """Write a saved run of the tiny model to ``run_dir`` and return ``run_dir``."""
    config = compose_run_config(data_root, tuning)
    model = build_model(config)
    randomize_trainable(model)
    save_trainable(model, run_dir / "checkpoints" / "best.safetensors", {"epoch": 1, "step": 2, "score": 0.1})
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(config), encoding="utf-8")
    metrics = {"test": {"BLEU_4": 0.25, "CIDEr": 0.5, "num_samples": 3}, "train": {"best_score": 0.1,
               "best_epoch": 1, "steps": 2}, "seconds": 12.5}
    (run_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    rows = [{"id": study_id, "reference": TEST_REPORTS[study_id], "hypothesis": TEST_HYPOTHESES[study_id]}
            for study_id in TEST_REPORTS]
    (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
    (run_dir / "predictions" / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows),
                                                        encoding="utf-8")
    return run_dir
