"""Check the public pytree utilities that optim, fit, models and newton share."""

import collections
import pickle

import numpy as np
import pytest

from symgrad import tree
from symgrad.models import flatten as models_flatten
from symgrad.models import unflatten as models_unflatten

Pair = collections.namedtuple("Pair", "first second")


def nested():
    return {
        "layer": [{"W": np.arange(6.0).reshape(2, 3), "b": np.array([1.0, 2.0, 3.0])},
                  (np.array(7.0), None)],
        "pair": Pair(np.array([8.0]), np.array([[9, 10]])),
    }  # fmt: skip


def test_flatten_order_and_round_trip():
    t = nested()
    leaves, treedef = tree.flatten(t)
    assert [np.asarray(x).ravel()[0] for x in leaves] == [0.0, 1.0, 7.0, 8.0, 9]
    assert tree.leaf_paths(treedef) == [
        "['layer'][0]['W']", "['layer'][0]['b']", "['layer'][1][0]", "['pair'][0]",
        "['pair'][1]",
    ]  # fmt: skip
    back = tree.unflatten(treedef, leaves)
    assert isinstance(back["pair"], Pair) and isinstance(back["layer"][1], tuple)
    assert back["layer"][1][1] is None and list(back) == ["layer", "pair"]
    assert all(a is b for a, b in zip(tree.leaves(back), leaves, strict=True))
    assert tree.structure(t) == treedef
    assert pickle.loads(pickle.dumps(treedef)) == treedef


def test_map_matches_other_trees_by_key():
    a = {"x": np.array([1.0, 2.0]), "y": [np.array(3.0)]}
    b = {"y": [np.array(10.0)], "x": np.array([100.0, 200.0])}  # another key order
    out = tree.map(lambda u, v: u + v, a, b)
    assert list(out) == ["x", "y"]
    assert out["x"].tolist() == [101.0, 202.0] and out["y"][0] == 13.0


@pytest.mark.parametrize(
    "other, pattern",
    [
        ({"x": np.zeros(2)}, r"tree #1: dict keys \[.*'x'.*\] do not match \[.*'x'.*'y'.*\]"),
        ({"x": np.zeros(2), "y": np.zeros(1)}, r"tree #1\['y'\]: expected a list of length 1"),
        ({"x": None, "y": [np.zeros(1)]}, r"tree #1\['x'\]: expected an array leaf, got NoneType"),
        ({"x": np.zeros(2), "y": [np.zeros(1), 1]}, r"got list of length 2"),
    ],
)
def test_structure_mismatch_names_the_path(other, pattern):
    a = {"x": np.array([1.0, 2.0]), "y": [np.array(3.0)]}
    with pytest.raises(ValueError, match=pattern):
        tree.map(lambda u, v: u, a, other)


def test_flatten_as_checks_none_and_dict_kinds():
    treedef = tree.structure({"a": None, "b": {"c": np.zeros(1)}})
    with pytest.raises(ValueError, match=r"grads\['a'\]: expected None, got int"):
        tree.flatten_as(treedef, {"a": 1, "b": {"c": 0}}, "grads")
    with pytest.raises(ValueError, match=r"grads\['b'\]: expected a dict, got list"):
        tree.flatten_as(treedef, {"a": None, "b": [0]}, "grads")
    assert tree.flatten_as(treedef, {"b": {"c": 5}, "a": None}, "grads") == [5]


def test_ravel_unravel_round_trip_and_models_aliases():
    t = {"W": np.arange(6.0).reshape(2, 3), "b": np.array([7, 8])}
    vec = tree.ravel(t)
    assert vec.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0] and vec.dtype == np.float64
    back = tree.unravel(vec * 2, t)
    assert back["W"].shape == (2, 3) and back["b"].tolist() == [14.0, 16.0]
    back["W"][0, 0] = 99.0
    assert vec[0] == 0.0  # unravel copies
    with pytest.raises(ValueError, match=r"vector has shape \(3,\), expected \(8,\)"):
        tree.unravel(np.zeros(3), t)
    assert tree.ravel({}).shape == (0,)
    assert models_flatten is tree.ravel and models_unflatten is tree.unravel


def test_as_float_array():
    assert tree.as_float_array(np.array([1, 2])).dtype == np.float64
    f32 = np.ones(2, dtype=np.float32)
    assert tree.as_float_array(f32) is f32
    assert tree.as_float_array(True).dtype == np.float64


def test_no_private_tree_helpers_are_imported_across_modules():
    import symgrad.fit
    import symgrad.models
    import symgrad.newton
    import symgrad.optim

    for module in (symgrad.fit, symgrad.models, symgrad.newton, symgrad.optim):
        for name in ("_flatten", "_unflatten", "_flatten_as", "_leaf_paths", "_tree_map"):
            assert not hasattr(module, name), (module.__name__, name)
