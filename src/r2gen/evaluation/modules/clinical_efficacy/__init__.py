"""Folder of the `clinical_efficacy` evaluate module; load it with evaluate.load on this folder."""
