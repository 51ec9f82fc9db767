"""Figures and reports; they read results (dicts from ``to_dict``) only."""
