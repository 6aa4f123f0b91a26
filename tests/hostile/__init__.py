"""Hostile inputs: names, docstrings, defaults, arrays, paths and flags an adversarial user tries."""
