"""Report-generation metrics: NLG scores (pycocoevalcap 1.2), clinical efficacy and diagnostics.

This package imports nothing from ``r2gen.data``, ``r2gen.models`` or ``r2gen.training``.
"""

from r2gen.evaluation.nlg import NLG_KEYS, NLGScorer, compute_nlg_metrics

__all__ = ["NLG_KEYS", "NLGScorer", "compute_nlg_metrics"]
