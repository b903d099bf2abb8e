"""EvaluationConfig: which metrics ``score_reports`` computes and how."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from r2gen.evaluation.labels import UNCERTAIN_POLICIES

LABELERS = ("rules", "chexbert")


@dataclass
class EvaluationConfig:
    """Settings shared by validation, test and ``python -m r2gen.evaluate``.

    Hydra builds it from ``conf/evaluation/*.yaml`` through ``_target_``, so an unknown key in
    the YAML raises TypeError instead of being ignored.
    """

    nlg: bool = True
    clinical: bool = True
    labeler: str = "rules"
    chexbert_checkpoint: str | None = None
    # Folder with the bert-base-uncased tokenizer files (vocab.txt), needed by the CheXbert labeler.
    chexbert_tokenizer: str | None = None
    uncertain_policy: str = "positive"
    bootstrap_samples: int = 1000
    bootstrap_seed: int = 0
    confidence: float = 0.95
    diagnostics: bool = True

    def __post_init__(self) -> None:
        if self.labeler not in LABELERS:
            raise ValueError(f"evaluation.labeler is {self.labeler!r}; expected one of {LABELERS}")
        if self.uncertain_policy not in UNCERTAIN_POLICIES:
            raise ValueError(
                f"evaluation.uncertain_policy is {self.uncertain_policy!r}; expected one of {UNCERTAIN_POLICIES}"
            )
        if self.labeler == "chexbert" and self.clinical and not (self.chexbert_checkpoint and self.chexbert_tokenizer):
            raise ValueError(
                "evaluation.labeler is 'chexbert' but evaluation.chexbert_checkpoint or "
                "evaluation.chexbert_tokenizer is not set; give both paths or use labeler 'rules'"
            )
        if self.bootstrap_samples < 0:
            raise ValueError(f"evaluation.bootstrap_samples is {self.bootstrap_samples}; expected 0 (off) or more")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"evaluation.confidence is {self.confidence}; expected a value between 0 and 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
