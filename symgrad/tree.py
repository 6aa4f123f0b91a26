"""Pytree utilities (numpy only), so optimizers, fit, models and Newton share one leaf order.

A pytree is ``None``, a dict, list or tuple (named tuples included) of pytrees, or a leaf
(anything else, normally a numpy array). Dict leaves are visited in insertion order; a tree
matched against a structure (:func:`flatten_as`, :func:`map`'s extra trees) is matched by key,
so its own key order does not matter. Every function returns new containers and never
modifies its inputs.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from symgrad import _xp

__all__ = [
    "TreeDef",
    "as_float_array",
    "flatten",
    "flatten_as",
    "leaf_paths",
    "leaves",
    "map",
    "path_str",
    "ravel",
    "structure",
    "unflatten",
    "unravel",
]

PyTree = Any


class TreeDef(NamedTuple):
    """Describe a pytree's structure: node kind, container type, keys and child structures."""

    kind: str  # "leaf", "none", "dict", "list", "tuple"
    node_type: type | None
    keys: tuple
    children: tuple


_LEAF = TreeDef("leaf", None, (), ())
_NONE = TreeDef("none", None, (), ())


def flatten(tree: PyTree) -> tuple[list, TreeDef]:
    """Split a pytree into its leaves (deterministic order) and a structure description."""
    out: list = []

    def go(node: PyTree) -> TreeDef:
        if node is None:
            return _NONE
        if isinstance(node, dict):
            keys = tuple(node)
            return TreeDef("dict", type(node), keys, tuple(go(node[k]) for k in keys))
        if isinstance(node, list | tuple):
            kind = "list" if isinstance(node, list) else "tuple"
            return TreeDef(kind, type(node), tuple(range(len(node))), tuple(go(c) for c in node))
        out.append(node)
        return _LEAF

    return out, go(tree)


def structure(tree: PyTree) -> TreeDef:
    """Return the structure of ``tree`` (the second half of :func:`flatten`)."""
    return flatten(tree)[1]


def leaves(tree: PyTree) -> list:
    """Return the leaves of a pytree in deterministic order."""
    return flatten(tree)[0]


def path_str(path: tuple) -> str:
    """Spell a key path the way Python indexes it, e.g. ``['layer'][0]``."""
    return "".join(f"[{k!r}]" for k in path)


def leaf_paths(treedef: TreeDef) -> list[str]:
    """List the path of every leaf of ``treedef``, e.g. ``['layer'][0]``, in leaf order."""
    out: list[str] = []

    def go(td: TreeDef, path: tuple) -> None:
        if td.kind == "leaf":
            out.append(path_str(path))
        for k, child in zip(td.keys, td.children, strict=True):
            go(child, (*path, k))

    go(treedef, ())
    return out


def _type_name(node: Any) -> str:
    return type(node).__name__


def _check_node(td: TreeDef, node: PyTree, where: str) -> None:
    """Raise ValueError naming ``where`` when ``node`` is not a node of ``td``'s kind."""
    if td.kind == "leaf":
        if node is None or isinstance(node, dict | list | tuple):
            raise ValueError(f"{where}: expected an array leaf, got {_type_name(node)}")
    elif td.kind == "none":
        if node is not None:
            raise ValueError(f"{where}: expected None, got {_type_name(node)}")
    elif td.kind == "dict":
        if not isinstance(node, dict):
            raise ValueError(f"{where}: expected a dict, got {_type_name(node)}")
        if set(node) != set(td.keys):
            raise ValueError(
                f"{where}: dict keys {sorted(builtins.map(repr, node))} do not match "
                f"{sorted(builtins.map(repr, td.keys))}"
            )
    else:
        want = list if td.kind == "list" else tuple
        if not isinstance(node, want) or len(node) != len(td.keys):
            got = _type_name(node) + (
                f" of length {len(node)}" if isinstance(node, list | tuple) else ""
            )
            raise ValueError(f"{where}: expected a {td.kind} of length {len(td.keys)}, got {got}")


def flatten_as(treedef: TreeDef, tree: PyTree, what: str = "tree") -> list:
    """Return the leaves of ``tree`` in ``treedef``'s order, checking it has that structure.

    A mismatch raises ValueError naming the path, e.g. ``grads['b']: expected a dict``.
    """
    out: list = []

    def go(td: TreeDef, node: PyTree, path: tuple) -> None:
        _check_node(td, node, f"{what}{path_str(path)}")
        if td.kind == "leaf":
            out.append(node)
        for k, child in zip(td.keys, td.children, strict=True):
            go(child, node[k], (*path, k))

    go(treedef, tree, ())
    return out


def unflatten(treedef: TreeDef, leaves: list) -> PyTree:
    """Rebuild a pytree of ``treedef``'s structure from leaves in flatten order."""
    it = iter(leaves)

    def go(td: TreeDef) -> PyTree:
        if td.kind == "leaf":
            return next(it)
        if td.kind == "none":
            return None
        children = [go(c) for c in td.children]
        if td.kind == "dict":
            out = dict(zip(td.keys, children, strict=True))
            return out if td.node_type is dict else td.node_type(out)
        if td.kind == "list":
            return children if td.node_type is list else td.node_type(children)
        if hasattr(td.node_type, "_fields"):  # namedtuple
            return td.node_type(*children)
        return td.node_type(children)

    return go(treedef)


def map(fn: Callable[..., Any], tree: PyTree, *rest: PyTree) -> PyTree:
    """Apply ``fn`` leaf-wise over trees shaped like ``tree``; return a tree of the results."""
    first, treedef = flatten(tree)
    others = [flatten_as(treedef, r, f"tree #{i + 1}") for i, r in enumerate(rest)]
    return unflatten(treedef, [fn(*xs) for xs in zip(first, *others, strict=True)])


def as_float_array(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array, converting integer and bool arrays to float64.

    An array of another library (torch, CuPy, JAX, ...) stays in it (cast the same way), so
    the optimizers and :func:`symgrad.fit` run in that library.
    """
    if _xp.is_foreign(x):
        return _xp.as_float(x)
    a = np.asarray(x)
    return a if np.issubdtype(a.dtype, np.inexact) else a.astype(np.float64)


def ravel(tree: PyTree) -> np.ndarray:
    """Concatenate the leaves of ``tree`` into one float vector, each leaf raveled in C order.

    Leaves are taken in the dict's insertion order (``W, b`` for the linear models,
    ``W0, b0, W1, b1, ...`` for an MLP, as ``init`` returns them): Hessians use this order.
    """
    parts = leaves(tree)
    if not parts:
        return np.zeros(0)
    return np.concatenate([np.ravel(np.asarray(leaf, dtype=float)) for leaf in parts])


def unravel(vec: Any, like: PyTree) -> PyTree:
    """Split a copy of ``vec`` into arrays shaped like the leaves of ``like`` (inverse of ravel)."""
    vec = np.asarray(vec, dtype=float)
    parts, treedef = flatten(like)
    shapes = [np.shape(leaf) for leaf in parts]
    sizes = [int(np.prod(shape)) for shape in shapes]
    if vec.shape != (sum(sizes),):
        raise ValueError(f"vector has shape {vec.shape}, expected ({sum(sizes)},) for these params")
    pieces = np.split(vec.copy(), np.cumsum(sizes)[:-1]) if sizes else []
    return unflatten(treedef, [p.reshape(s) for p, s in zip(pieces, shapes, strict=True)])
