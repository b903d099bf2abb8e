"""Small R2Gen-layout trees built from the real covid_cxr and IU X-ray images, for the baseline tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from r2gen.evaluation import EvaluationConfig
from r2gen.training.config import DataConfig

# Tiny random Swin from the `encoder=tiny` config: 64 px input, fast on CPU.
TINY_ENCODER = OmegaConf.create({"_target_": "r2gen.models.tiny.tiny_swin_encoder", "image_size": 64, "seed": 0})
NLG_ONLY = EvaluationConfig(clinical=False, bootstrap_samples=0)
# Diagnostics only: no METEOR JVM to start, for tests about which reports the systems pick.
DIAGNOSTICS_ONLY = EvaluationConfig(nlg=False, clinical=False, bootstrap_samples=0)

# Studies as (id, report, [image files relative to the shared data root]).
Entry = tuple[str, str, list[str]]


def write_tree(root: Path, data_root: Path, splits: dict[str, list[Entry]]) -> Path:
    """Copy each study's images to ``root/images/<id>/<n><suffix>`` and write ``root/annotation.json``."""
    annotation: dict[str, list[dict]] = {}
    for split, entries in splits.items():
        annotation[split] = []
        for study_id, report, sources in entries:
            paths = []
            for index, source in enumerate(sources):
                relative = f"{study_id}/{index}{Path(source).suffix}"
                (root / "images" / study_id).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(data_root / source, root / "images" / relative)
                paths.append(relative)
            annotation[split].append({"id": study_id, "report": report, "image_path": paths})
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotation.json").write_text(json.dumps(annotation), encoding="utf-8")
    return root


def data_config(root: Path, name: str = "tiny", cleaning: str = "iu_xray") -> DataConfig:
    return DataConfig(name=name, root=str(root), cleaning=cleaning)


def covid_images(data_root: Path, count: int) -> list[str]:
    """Return the first ``count`` covid_cxr image paths (sorted), relative to the shared data root."""
    annotation = json.loads((data_root / "covid_cxr_notes" / "annotation.json").read_text(encoding="utf-8"))
    paths = sorted(f"covid_cxr_notes/images/{entry['image_path'][0]}" for entry in annotation["train"])
    return paths[:count]
