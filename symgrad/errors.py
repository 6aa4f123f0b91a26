"""Errors symgrad raises for bad specs, so users see one clear line instead of sympy internals."""


class SymgradError(Exception):
    """Base class of every error symgrad raises on purpose."""


class SpecError(SymgradError, ValueError):
    """A kernel spec cannot be turned into code; the message names the spec and the problem."""

    def __init__(self, spec: str, problem: str, origin: str | None = None) -> None:
        self.spec = spec
        self.problem = problem
        self.origin = origin
        where = f" (defined in {origin})" if origin else ""
        super().__init__(f"spec {spec!r}{where}: {problem}")
