"""Hugging Face ``evaluate`` modules of r2gen's metrics, loadable offline by local path.

``evaluate.load(module_path("nlg_metrics"))`` loads ``nlg_metrics/nlg_metrics.py`` from this
folder; the copies on the Hugging Face Hub are not used.
"""

from pathlib import Path

MODULE_NAMES = ("nlg_metrics", "clinical_efficacy", "report_diagnostics")


def module_path(name: str) -> str:
    """Return the folder of an evaluate module, for ``evaluate.load``."""
    if name not in MODULE_NAMES:
        raise ValueError(f"unknown evaluate module {name!r}; expected one of {MODULE_NAMES}")
    return str(Path(__file__).resolve().parent / name)
