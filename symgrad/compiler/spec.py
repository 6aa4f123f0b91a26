"""What a kernel is: a name, a role, array inputs, hyper-parameters and one sympy expression."""

from __future__ import annotations

import builtins
import inspect
import keyword
import math
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import sympy as sp

from symgrad._specref import lazy
from symgrad.compiler.primitives import N_CLASSES, REDUCTIONS, has_reduction
from symgrad.compiler.traverse import atoms_of, free_symbols_of, has_node, tree_sizes
from symgrad.domains import DOMAINS, SCALAR_DOMAINS, contains, describe
from symgrad.errors import SpecError

ROLES = ("activation", "loss", "regularizer")
#: How a loss's first input becomes a prediction: as is, through a sigmoid, or a softmax.
LINKS = ("identity", "sigmoid", "softmax")
#: Names the emitted code uses for itself; a spec may not take them.
RESERVED = frozenset(
    {"np", "math", "threading", "n_classes", "n_samples", "inv_n", "grad_output", "vector"}
    | {"out", "count", "weight"}  # keyword arguments of the emitted functions
    | {"rows", "KERNELS"}  # a per-row result's view; the generated module's metadata table
)
#: names the emitted bodies use: CSE temporaries, buffers, reduced values
_TEMP_NAME = re.compile(r"^(t|b|m|r|rm|value)\d+$")
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: Python's builtins (``float``, ``len``, ``isinstance`` …): the emitted functions and their
#: run-time helpers call them, so a kernel or parameter may not shadow one.
BUILTINS = frozenset(n for n in dir(builtins) if not n.startswith("_"))


#: functions whose derivative jumps (or that select between branches): a kink in the input
_KINKS = (sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min, sp.Piecewise, sp.floor, sp.ceiling)


@dataclass(frozen=True)
class Spec:
    """One kernel: ``expr`` over array ``inputs`` and scalar hyper-parameters with defaults.

    Specs compare and hash by value (every field but ``origin``, which only says where it was
    written), so an equal spec rebuilt elsewhere, copied by ``sklearn.base.clone`` or
    unpickled hits the same compile cache. They pickle as plain data.
    """

    name: str
    role: str
    inputs: tuple[sp.Symbol, ...]
    hyper: tuple[tuple[sp.Symbol, float], ...]
    expr: sp.Expr
    doc: str = ""
    origin: str = field(default="", compare=False)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate every spec however it was built (decorator, ``compose`` or ``Spec(...)``),
        after making each default a plain float or int: a subclass's ``repr`` would be printed
        into the emitted signature and ``KERNELS`` table, and run as code on import."""
        if isinstance(self.hyper, tuple):
            plain = tuple(
                (h[0], plain_number(h[1])) if isinstance(h, tuple) and len(h) == 2 else h
                for h in self.hyper
            )
            object.__setattr__(self, "hyper", plain)
        validate(self)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as name, role and the spec's own pickle (:mod:`symgrad._specref`): a process
        without the compiler loaded (a Dask worker running the compiled kernels) unpickles
        the spec, and imports sympy, only if it uses more of it than its name."""
        state = _State(tuple(getattr(self, f.name) for f in fields(self)))
        return lazy, (self.name, self.role, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    def __hash__(self) -> int:
        fields = (self.name, self.role, self.inputs, self.hyper, self.expr, self.doc)
        return hash((*fields, _frozen(self.meta)))

    @property
    def wrt(self) -> sp.Symbol:
        """Return the input the kernel is differentiated with respect to (the first)."""
        return self.inputs[0]

    @property
    def class_axis(self) -> bool:
        """Tell whether the kernel reduces over the last (class) axis."""
        return has_reduction(self.expr)

    @property
    def curvature(self) -> str:
        """Return ``"kinked"`` if a non-smooth function (``Abs``, ``Max``, ``Piecewise`` ...)
        of the first input appears in the expression, so the second derivative is zero or
        undefined on whole regions and Newton's steps degrade; else ``"smooth"``."""
        # distinct nodes only: a deep spec's tree is a DAG, exponential to walk as a tree
        kinks = atoms_of(self.expr, *_KINKS)
        return "kinked" if any(self.wrt in free_symbols_of(k) for k in kinks) else "smooth"

    @property
    def hyper_defaults(self) -> dict[str, float]:
        """Return hyper-parameter names mapped to their defaults."""
        return {s.name: v for s, v in self.hyper}

    def domain(self, name: str) -> str:
        """Return the declared domain of parameter ``name`` (``"real"`` if none)."""
        return self.meta.get("domains", {}).get(name, "real")

    def __call__(self, *args: Any, **kwargs: Any) -> sp.Expr:
        """Return the expression with inputs (and optionally hyper-parameters) substituted."""
        names = [s.name for s in self.inputs] + [s.name for s, _ in self.hyper]
        if len(args) > len(names):
            raise TypeError(f"{self.name}() takes at most {len(names)} arguments")
        given = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{self.name}() got an unexpected argument {key!r}")
            given[key] = value
        symbols = {s.name: s for s in self.inputs} | {s.name: s for s, _ in self.hyper}
        return self.expr.xreplace({symbols[k]: sp.sympify(v) for k, v in given.items()})

    def __repr__(self) -> str:
        args = ", ".join([s.name for s in self.inputs] + [f"{s.name}={v!r}" for s, v in self.hyper])
        return f"<symgrad {self.role} {self.name}({args})>"


def _frozen(value: Any) -> Any:
    """Return ``value`` with dicts and lists turned into (sorted) tuples, so it can be hashed."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def check_name(name: str, what: str, spec: str, origin: str = "") -> None:
    """Raise SpecError unless ``name`` is safe to emit as a Python identifier."""
    if not isinstance(name, str) or not _IDENT.match(name) or not name.isascii():
        shown = name if isinstance(name, str) else type(name).__name__
        raise SpecError(str(spec), f"{what} {shown!r} is not a valid Python identifier", origin)
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise SpecError(spec, f"{what} {name!r} is a Python keyword", origin)
    if name in RESERVED or _TEMP_NAME.match(name):
        raise SpecError(spec, f"{what} {name!r} is reserved for generated code", origin)
    if name in BUILTINS:
        raise SpecError(
            spec, f"{what} {name!r} would shadow the Python builtin of that name; rename it", origin
        )


#: What a spec's own exception says -> how to fix the spec (numpy or math on symbols; ``if``).
_HINTS = (
    ("truth value of Relational", "use sp.Piecewise for a condition (sp.Max, sp.Min for max, min)"),
    ("ufunc", "use sympy functions such as sp.cosh, not numpy's"),
    ("convert expression to float", "use sympy functions such as sp.cosh, not math's"),
)


def _hint(message: str) -> str:
    """Return ``"; HINT"`` for an exception message that :data:`_HINTS` knows, else ``""``."""
    return next((f"; {hint}" for key, hint in _HINTS if key in message), "")


def check_doc(doc: str, spec: str, origin: str = "") -> str:
    """Return ``doc`` if it can sit inside a generated raw docstring, else raise SpecError."""
    if not isinstance(doc, str):
        raise SpecError(spec, f"docstring must be a str, got {type(doc).__name__}", origin)
    if '"""' in doc or doc.endswith("\\"):
        raise SpecError(spec, "docstring would break out of the generated string", origin)
    if any(not (c.isprintable() or c in "\n\t") for c in doc):
        bad = next(c for c in doc if not (c.isprintable() or c in "\n\t"))
        raise SpecError(
            spec, f"docstring contains the unprintable character {bad!r}; remove it", origin
        )
    return doc


def _origin(fn: Callable) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', '?')}"


def plain_number(value: Any) -> Any:
    """Return a float or int subclass (numpy's float64 too) as a plain ``float`` / ``int``,
    read from the number's own slot (never its ``__float__``, ``__int__`` or ``repr``); other
    values, bools included, unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, int):
        return int.__int__(value)
    return value


def _hyper_default(value: Any, spec: str, pname: str, origin: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(
            spec, f"hyper-parameter {pname!r} has default {value!r}; expected a number", origin
        )
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        finite = False
    if not finite:
        raise SpecError(
            spec,
            f"hyper-parameter {pname!r} has default {value!r}; expected a finite number",
            origin,
        )
    return plain_number(value)


def _check_fields(spec: Spec) -> None:
    """Raise SpecError unless every field has the type the code generator relies on."""
    name, origin = spec.name, spec.origin
    if not isinstance(origin, str):
        raise SpecError(str(name), f"origin must be a str, got {type(origin).__name__}")
    check_name(name, "kernel name", name, origin)
    if not isinstance(spec.role, str) or spec.role not in ROLES:
        raise SpecError(name, f"unknown role {spec.role!r}; expected one of {ROLES}", origin)
    if not isinstance(spec.inputs, tuple) or not all(
        isinstance(s, sp.Symbol) and s.is_real for s in spec.inputs
    ):
        raise SpecError(name, "inputs must be a tuple of real sympy Symbols", origin)
    if not isinstance(spec.hyper, tuple) or not all(
        isinstance(h, tuple) and len(h) == 2 and isinstance(h[0], sp.Symbol) and h[0].is_real
        for h in spec.hyper
    ):
        raise SpecError(name, "hyper must be a tuple of (real sympy Symbol, default) pairs", origin)
    for sym, default in spec.hyper:
        _hyper_default(default, name, sym.name, origin)
    if not isinstance(spec.meta, dict):
        raise SpecError(name, f"meta must be a dict, got {type(spec.meta).__name__}", origin)
    link = spec.meta.get("link")
    if link is not None and link not in LINKS:
        raise SpecError(name, f"link {link!r} is not one of {LINKS}", origin)
    _check_domains(spec)


def _check_domains(spec: Spec) -> None:
    """Raise SpecError unless every declared domain is known and names a parameter, and each
    hyper-parameter's is a scalar domain that holds for its default."""
    name, origin = spec.name, spec.origin
    domains = spec.meta.get("domains", {})
    if not isinstance(domains, Mapping):
        raise SpecError(name, f"domains must be a mapping, got {type(domains).__name__}", origin)
    defaults = spec.hyper_defaults
    names = {s.name for s in spec.inputs} | set(defaults)
    for pname, domain in domains.items():
        if pname not in names:
            raise SpecError(name, f"domains names {pname!r}, which is not a parameter", origin)
        if not isinstance(domain, str) or domain not in DOMAINS:
            raise SpecError(
                name, f"domain {domain!r} of {pname!r} is not one of {sorted(DOMAINS)}", origin
            )
        if pname not in defaults:
            continue
        if domain not in SCALAR_DOMAINS:
            raise SpecError(
                name,
                f"hyper-parameter {pname!r} is a number; its domain must be one of "
                f"{SCALAR_DOMAINS}, got {domain!r}",
                origin,
            )
        if not contains(domain, defaults[pname]):
            raise SpecError(
                name,
                f"hyper-parameter {pname!r} has default {defaults[pname]!r}, "
                f"which is not {describe(domain)}",
                origin,
            )


def validate(spec: Spec) -> Spec:
    """Check a spec's expression and signature; raise SpecError naming the first problem.

    The checks walk the whole expression tree, so they run under the validate budget (a
    composition that repeats a subexpression is exponentially large as a tree).
    """
    from symgrad.compiler.config import DEFAULT, OutOfTime, budget
    from symgrad.errors import BudgetError

    try:
        with budget("validate", DEFAULT.derive_s):
            return _validate(spec)
    except OutOfTime as exc:
        raise BudgetError(spec.name, exc.stage, f"{exc.seconds:g} s", spec.origin) from None


def _validate(spec: Spec) -> Spec:
    _check_fields(spec)
    _check_arity(spec)
    _check_parameters(spec)
    _check_expression(spec)
    _check_piecewise(spec)
    from symgrad.compiler.printer import (
        unsupported_functions,  # late: the printer imports rewrite rules
    )

    bad = unsupported_functions(spec.expr)
    if bad:
        raise SpecError(spec.name, f"function {bad[0]!r} cannot be lowered to numpy", spec.origin)
    _check_reductions(spec)
    check_doc(spec.doc, spec.name, spec.origin)
    return spec


def _check_arity(spec: Spec) -> None:
    """An activation or regularizer takes one array input, a loss one to three."""
    name, origin = spec.name, spec.origin
    n_inputs = len(spec.inputs)
    if spec.role in ("activation", "regularizer") and n_inputs != 1:
        raise SpecError(
            name, f"an {spec.role} takes exactly one array input, got {n_inputs}", origin
        )
    if spec.role == "loss" and not 1 <= n_inputs <= 3:
        raise SpecError(name, f"a loss takes one to three array inputs, got {n_inputs}", origin)


def _check_parameters(spec: Spec) -> None:
    """Inputs and hyper-parameters have valid names, each used once."""
    seen: set[str] = set()
    for sym in [*spec.inputs, *(s for s, _ in spec.hyper)]:
        check_name(sym.name, "parameter", spec.name, spec.origin)
        if sym.name in seen:
            raise SpecError(spec.name, f"parameter {sym.name!r} appears twice", spec.origin)
        seen.add(sym.name)


def _check_expression(spec: Spec) -> None:
    """The expression is a finite real scalar in the inputs and hyper-parameters only."""
    name, origin, expr = spec.name, spec.origin, spec.expr
    if not isinstance(expr, sp.Expr) or isinstance(
        expr, sp.MatrixBase | sp.core.relational.Relational | sp.logic.boolalg.BooleanFunction
    ):
        raise SpecError(
            name, f"expression must be a scalar sympy expression, got {type(expr).__name__}", origin
        )
    if has_node(expr, sp.I) or _real(expr) is False:
        raise SpecError(name, "expression is not real-valued", origin)
    complex_part = _nowhere_real(expr)
    if complex_part is not None:
        raise SpecError(
            name,
            f"expression is not real-valued anywhere: {sp.sstr(complex_part)[:80]} has "
            f"imaginary part {sp.sstr(sp.im(complex_part))} for every input",
            origin,
        )
    if has_node(expr, sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise SpecError(name, "expression contains an infinity or nan", origin)
    if has_node(expr, sp.AccumBounds):  # atan(zoo), sin(oo): a range, not a number
        raise SpecError(name, "expression contains an interval (AccumBounds), not a number", origin)
    allowed = set(spec.inputs) | {s for s, _ in spec.hyper} | {N_CLASSES}
    for sym in sorted(free_symbols_of(expr) - allowed, key=lambda s: s.name):
        known = {s.name for s in allowed}
        hint = (
            f" (a symbol named {sym.name!r} exists with other assumptions; use real=True)"
            if sym.name in known
            else ""
        )
        raise SpecError(
            name,
            f"free symbol {sym.name!r} is neither an input nor a hyper-parameter{hint}",
            origin,
        )


#: Expressions larger than this (as trees) are not handed to sympy's assumptions whole: their
#: queries walk the tree (``is_polynomial``, ``free_symbols``), exponential in a composition.
ASK_NODES = 400


def _real(expr: sp.Expr) -> bool | None:
    """Return sympy's ``is_extended_real`` of ``expr``; for a large expression, combine the
    answers for its small subexpressions once per distinct node (True, False or unknown)."""
    sizes = tree_sizes(expr, ASK_NODES + 1)
    if sizes[expr] <= ASK_NODES:
        return expr.is_extended_real
    facts: dict[sp.Basic, bool | None] = {}
    for node in sizes:  # children first
        if not isinstance(node, sp.Expr):
            facts[node] = None
        elif sizes[node] <= ASK_NODES:
            facts[node] = node.is_extended_real
        elif node.is_Add or node.is_Mul:
            args = [facts[a] for a in node.args]
            real = all(args)
            # a sum of reals and one non-real is not real
            facts[node] = (
                True
                if real
                else (
                    False
                    if node.is_Add and args.count(False) == 1 and args.count(None) == 0
                    else None
                )
            )
        elif node.is_Pow:
            base, exp = node.args
            facts[node] = True if facts[base] and exp.is_Integer else None
        else:
            facts[node] = None
    return facts[expr]


def _nowhere_real(expr: sp.Expr) -> sp.Expr | None:
    """Return a logarithm or fractional power in ``expr`` whose imaginary part is a nonzero
    constant (a log of a quantity negative everywhere, such as ``log(log(sigmoid(x)))``), or
    None; subexpressions larger than ``ASK_NODES`` are not asked."""
    sizes = tree_sizes(expr, ASK_NODES + 1)
    for node in sizes:  # children first: the innermost culprit is named
        branch = isinstance(node, sp.log) or (node.is_Pow and node.exp.is_integer is False)
        if branch and sizes[node] <= ASK_NODES:
            # asked of a copy on fresh symbols: sympy caches what it learns on the nodes it
            # queries, and the later stages must see the spec's nodes as they were
            fresh = {s: sp.Dummy(s.name, real=True) for s in free_symbols_of(node)}
            imaginary = sp.im(node.xreplace(fresh))
            if imaginary.is_number and imaginary.is_zero is False:
                return node
    return None


def _check_piecewise(spec: Spec) -> None:
    """Every Piecewise ends with an otherwise branch."""
    for pw in sorted(atoms_of(spec.expr, sp.Piecewise), key=sp.default_sort_key):
        if pw.args[-1].cond is not sp.true:
            raise SpecError(
                spec.name,
                f"Piecewise {sp.sstr(pw)[:80]} has no otherwise branch; end it with (value, True)",
                spec.origin,
            )


def _check_reductions(spec: Spec) -> None:
    """A class-axis loss uses its inputs only inside reductions."""
    name, origin, expr = spec.name, spec.origin, spec.expr
    if spec.role == "loss" and has_reduction(expr):
        outside = _outside_reductions(expr) & set(spec.inputs)
        if outside:
            names = ", ".join(sorted(s.name for s in outside))
            raise SpecError(
                name,
                f"class-axis loss uses input(s) {names} outside a reduction; "
                "wrap per-class terms in symgrad.axis_sum",
                origin,
            )


def _outside_reductions(expr: sp.Expr) -> set[sp.Symbol]:
    if isinstance(expr, REDUCTIONS):
        return set()
    if isinstance(expr, sp.Symbol):
        return {expr}
    out: set[sp.Symbol] = set()
    for arg in expr.args:
        out |= _outside_reductions(arg)
    return out


def _meta(
    spec: str,
    names: list[str],
    domains: Mapping[str, str] | None,
    link: str | None,
    origin: str,
    convex: bool | None = None,
) -> dict[str, Any]:
    """Return a spec's declared facts (input domains, link, convexity in the first input),
    checked against its parameters."""
    meta: dict[str, Any] = {}
    if convex is not None:
        if not isinstance(convex, bool):
            raise SpecError(spec, f"convex must be True, False or None, got {convex!r}", origin)
        meta["convex"] = convex
    if domains:
        if not isinstance(domains, Mapping):
            raise SpecError(
                spec, f"domains must be a mapping, got {type(domains).__name__}", origin
            )
        for key, domain in domains.items():
            if key not in names:
                raise SpecError(spec, f"domains names {key!r}, which is not a parameter", origin)
            if domain not in DOMAINS:
                raise SpecError(
                    spec, f"domain {domain!r} of {key!r} is not one of {sorted(DOMAINS)}", origin
                )
        meta["domains"] = {k: domains[k] for k in sorted(domains)}
    if link is not None:
        if link not in LINKS:
            raise SpecError(spec, f"link {link!r} is not one of {LINKS}", origin)
        meta["link"] = link
    return meta


def from_function(
    fn: Callable,
    role: str,
    name: str | None = None,
    doc: str | None = None,
    *,
    domains: Mapping[str, str] | None = None,
    link: str | None = None,
    convex: bool | None = None,
) -> Spec:
    """Build a validated Spec by calling ``fn`` with one real symbol per parameter."""
    origin = _origin(fn)
    spec_name = name or getattr(fn, "__name__", "")
    check_name(spec_name, "kernel name", spec_name, origin)
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError) as exc:
        raise SpecError(spec_name, f"cannot read the signature: {exc}", origin) from None
    inputs: list[sp.Symbol] = []
    hyper: list[tuple[sp.Symbol, float]] = []
    kwargs: dict[str, sp.Symbol] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise SpecError(spec_name, f"parameter {p.name!r}: use plain named parameters", origin)
        check_name(p.name, "parameter", spec_name, origin)
        sym = sp.Symbol(p.name, real=True)
        kwargs[p.name] = sym
        if p.default is p.empty:
            if hyper:
                raise SpecError(
                    spec_name, f"array input {p.name!r} follows a hyper-parameter", origin
                )
            inputs.append(sym)
        else:
            hyper.append((sym, _hyper_default(p.default, spec_name, p.name, origin)))
    try:
        raw = fn(**kwargs)
    except Exception as exc:  # the user's code: report it, keep sympy's traceback out
        problem = f"building the expression raised {type(exc).__name__}: {exc}"
        raise SpecError(spec_name, problem + _hint(str(exc)), origin) from None
    try:
        expr = sp.sympify(raw, strict=True)
    except (sp.SympifyError, TypeError):
        raise SpecError(
            spec_name, f"returned {type(raw).__name__}, expected a sympy expression", origin
        ) from None
    text = doc if doc is not None else (fn.__doc__ or "")
    text = inspect.cleandoc(text) if isinstance(text, str) else text
    meta = _meta(spec_name, list(kwargs), domains, link, origin, convex)
    return Spec(spec_name, role, tuple(inputs), tuple(hyper), expr, text, origin, meta)


def _decorator(role: str):
    def make(
        fn: Callable | None = None,
        *,
        name: str | None = None,
        doc: str | None = None,
        domains: Mapping[str, str] | None = None,
        link: str | None = None,
        convex: bool | None = None,
    ):
        def build(f: Callable) -> Spec:
            if not callable(f) or isinstance(f, Spec):
                what = "a spec" if isinstance(f, Spec) else type(f).__name__
                raise SpecError(str(name or "?"), f"@{role} decorates a function, got {what}")
            return from_function(f, role, name, doc, domains=domains, link=link, convex=convex)

        return build if fn is None else build(fn)

    make.__name__ = role
    make.__doc__ = (
        f"Turn a function of sympy symbols into a {role} spec (usable bare or called). "
        "``domains`` maps parameters to the sets they live in (symgrad.domains.DOMAINS); "
        "``link`` names the function that turns a loss's first input into a prediction. "
        "``convex=True`` declares the kernel convex in its first input (the solver policy "
        "then trusts Newton's steps; unknown by default). "
        "A hyper-parameter's domain is checked on every call of the emitted functions."
    )
    return make


loss = _decorator("loss")
activation = _decorator("activation")
regularizer = _decorator("regularizer")


#: Names ``compose`` gives the pre-activation input, the first one the loss leaves free.
_PRE_ACTIVATION = ("z", "logits", "z_")


def compose(loss_spec: Spec, activation_spec: Spec, name: str | None = None) -> Spec:
    """Return a loss on pre-activations: ``loss(activation(z), ...)``, differentiated as a whole."""
    if (
        not isinstance(loss_spec, Spec)
        or not isinstance(activation_spec, Spec)
        or loss_spec.role != "loss"
        or activation_spec.role != "activation"
    ):
        raise SpecError(
            str(name or "compose"),
            "compose(loss, activation) takes a loss spec then an activation spec",
        )
    new_name = name or f"{activation_spec.name}_{loss_spec.name}"
    taken = {s.name for s in loss_spec.inputs[1:]} | {s.name for s, _ in loss_spec.hyper}
    z_name = next((n for n in _PRE_ACTIVATION if n not in taken), None)
    if z_name is None:
        raise SpecError(
            new_name,
            f"compose: loss {loss_spec.name!r} already uses every pre-activation name "
            f"({', '.join(_PRE_ACTIVATION)}); rename one of its parameters",
            f"compose({loss_spec.name}, {activation_spec.name})",
        )
    z = sp.Symbol(z_name, real=True)
    renames: dict[sp.Symbol, sp.Symbol] = {activation_spec.wrt: z}
    hyper = list(loss_spec.hyper)
    for sym, default in activation_spec.hyper:
        new = sym
        if sym.name in taken or sym.name == z_name:
            new = sp.Symbol(f"{activation_spec.name}_{sym.name}", real=True)
        renames[sym] = new
        hyper.append((new, default))
    inner = activation_spec.expr.xreplace(renames)
    expr = loss_spec.expr.xreplace({loss_spec.wrt: inner})
    doc = f"{loss_spec.name} composed with {activation_spec.name}, on pre-activations {z_name}."
    # the loss's domains except its first input's, and the activation's hyper-parameters'
    domains = {
        k: v for k, v in loss_spec.meta.get("domains", {}).items() if k != loss_spec.wrt.name
    }
    act_domains = activation_spec.meta.get("domains", {})
    domains |= {
        renames[s].name: act_domains[s.name]
        for s, _ in activation_spec.hyper
        if s.name in act_domains
    }
    meta: dict[str, Any] = {"composed": (loss_spec.name, activation_spec.name)}
    if domains:
        meta["domains"] = dict(sorted(domains.items()))
    return Spec(  # validated by Spec.__post_init__
        new_name,
        "loss",
        (z, *loss_spec.inputs[1:]),
        tuple(hyper),
        expr,
        doc,
        f"compose({loss_spec.name}, {activation_spec.name})",
        meta,
    )


class _State:
    """A spec's field values, pickled as a call to :func:`_rebuild` (no validation rerun)."""

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _rebuild, (self.values,)


def _rebuild(values: tuple[Any, ...]) -> Spec:
    """Return the spec whose field values a pickle carried (validated when first built)."""
    spec = object.__new__(Spec)
    for f, value in zip(fields(Spec), values, strict=True):
        object.__setattr__(spec, f.name, value)
    return spec
