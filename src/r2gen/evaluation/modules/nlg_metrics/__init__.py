"""Folder of the `nlg_metrics` evaluate module; load it with evaluate.load on this folder."""
