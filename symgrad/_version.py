"""symgrad's version, defined here only: the package, the generated headers and the wheel's
metadata (hatchling reads it from this file) all take it from here."""

__version__ = "0.1.0"
