"""r2gen: train, evaluate and compare LLM-based radiology report generators."""

__version__ = "0.1.0"
