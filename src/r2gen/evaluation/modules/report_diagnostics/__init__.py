"""Folder of the `report_diagnostics` evaluate module; load it with evaluate.load on this folder."""
