"""Selection of the CheXpert labeler named in an EvaluationConfig."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from r2gen.evaluation.config import EvaluationConfig
from r2gen.evaluation.labels import ReportLabels


class Labeler(Protocol):
    """Anything that labels reports with the 14 CheXpert observations."""

    name: str

    def label_reports(self, reports: Sequence[str]) -> list[ReportLabels]: ...


_LOADED: dict[tuple[str, str | None, str | None], Labeler] = {}


def build_labeler(config: EvaluationConfig) -> Labeler:
    """Return the configured labeler, loading each one once per process.

    Validation runs every epoch, so a CheXbert model is kept after its first load.
    """
    key = (config.labeler, config.chexbert_checkpoint, config.chexbert_tokenizer)
    if key not in _LOADED:
        if config.labeler == "rules":
            from r2gen.evaluation.rules_labeler import RuleBasedLabeler

            _LOADED[key] = RuleBasedLabeler()
        else:
            from r2gen.evaluation.chexbert import ChexbertLabeler

            assert config.chexbert_checkpoint is not None and config.chexbert_tokenizer is not None
            _LOADED[key] = ChexbertLabeler(config.chexbert_checkpoint, config.chexbert_tokenizer)
    return _LOADED[key]
