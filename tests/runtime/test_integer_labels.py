"""Integer class labels for the cross-entropies equal the one-hot result (torch's cross_entropy
with class indices, optax's ..._with_integer_labels), in every emitted function's face."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import symgrad.losses as L
from symgrad import boosting
from symgrad.models import MLP, SoftmaxRegression
from symgrad.resources import load_generated

RNG = np.random.default_rng(7)
FUNCTIONS = [fn for loss in L.LABEL_LOSSES for fn in L.KERNELS[loss]["functions"]]


def _inputs(loss: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """Return logits for softmax_cross_entropy, probability rows for categorical_cross_entropy."""
    z = RNG.normal(size=shape).astype(dtype)
    if loss == "softmax_cross_entropy":
        return z
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)).astype(dtype)


def _parts(result) -> list:
    """Return a result as a list of arrays (value_and_grad gives a pair)."""
    return list(result) if isinstance(result, tuple) else [result]


def _call(fn: str, yhat, y, **kw):
    args = (yhat, y, RNG.normal(size=yhat.shape)) if fn.endswith("_hvp") else (yhat, y)
    return getattr(L, fn)(*args, **kw)


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 6), (4,)])
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_labels_equal_one_hot(fn, shape):
    loss = next(n for n in L.LABEL_LOSSES if fn.startswith(n))
    yhat = _inputs(loss, shape)
    labels = RNG.integers(0, shape[-1], size=shape[:-1])
    onehot = np.eye(shape[-1])[labels]
    state = RNG.bit_generator.state
    want = _call(fn, yhat, onehot)
    RNG.bit_generator.state = state  # the same hvp vector for both calls
    got = _call(fn, yhat, labels)
    for g, w in zip(_parts(got), _parts(want), strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_labels_with_weights_whole_floats_and_float32(fn):
    loss = next(n for n in L.LABEL_LOSSES if fn.startswith(n))
    yhat = _inputs(loss, (6, 4), np.float32)
    labels = np.array([0, 3, 1, 1, 2, 0])
    w = RNG.uniform(0.5, 2, size=6)
    kw = {} if fn.endswith("_per_sample") else {"count": 9}
    state = RNG.bit_generator.state
    want = _call(fn, yhat, np.eye(4, dtype=np.float32)[labels], weight=w, **kw)
    for given in (labels, labels.astype(np.uint8), labels.astype(float)):
        RNG.bit_generator.state = state
        got = _call(fn, yhat, given, weight=w, **kw)
        for g, v in zip(_parts(got), _parts(want), strict=True):
            np.testing.assert_array_equal(g, v)
            assert np.asarray(g).dtype == np.asarray(v).dtype  # float32 stays float32


def test_the_issue_example_and_torch_value():
    z = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])
    got = L.softmax_cross_entropy(z, np.array([0, 2]))
    # -log softmax(z)[label], by hand: torch.nn.functional.cross_entropy's definition
    want = np.mean([np.log(np.exp(r).sum()) - r[k] for r, k in zip(z, [0, 2], strict=True)])
    assert got == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize(
    "y, words",
    [
        (np.array([0, 3]), r"must lie in \[0, 3\) for 3 classes, got values from 0 to 3"),
        (np.array([-1, 0]), r"must lie in \[0, 3\)"),
        (np.array([0.5, 1.0]), r"whole numbers in \[0, 3\), got 0.5; pass one-hot"),
        (np.array([np.nan, 1.0]), r"whole numbers"),
        (np.array([0, 1, 2, 1, 0]), r"y of shape \(5,\) is neither one-hot .* of shape \(2,\)"),
        (np.zeros((2, 2)), r"neither one-hot \(or probability\) rows of yhat's shape \(2, 3\)"),
    ],
)
@pytest.mark.parametrize("fn", ["softmax_cross_entropy", "categorical_cross_entropy_grad"])
def test_bad_labels_are_one_clear_error(fn, y, words):
    with pytest.raises(ValueError, match=f"^{fn}: .*{words}"):
        getattr(L, fn)(_inputs(fn, (2, 3)) + 0.1, y)


def test_rows_that_broadcast_keep_their_meaning():
    """A float row of C targets broadcasts over samples as before, even when n == C; an
    integer array of shape yhat.shape[:-1] is labels (torch decides by dtype too)."""
    z = RNG.normal(size=(3, 3))
    row = np.array([0.2, 0.3, 0.5])
    assert L.softmax_cross_entropy(z, row) == L.softmax_cross_entropy(z, np.tile(row, (3, 1)))
    labels = np.array([2, 0, 1])
    assert L.softmax_cross_entropy(z, labels) == L.softmax_cross_entropy(z, np.eye(3)[labels])


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_one_hot_targets_take_the_emitted_function_unchanged(fn):
    """Models and estimators pass one-hot rows: the face hands them to the kernel as they are."""
    raw = getattr(load_generated("losses"), fn)
    loss = next(n for n in L.LABEL_LOSSES if fn.startswith(n))
    yhat = _inputs(loss, (4, 3))
    y = np.eye(3)[[0, 1, 2, 2]]
    vector = RNG.normal(size=yhat.shape)
    args = (yhat, y, vector) if fn.endswith("_hvp") else (yhat, y)
    face = getattr(L, fn)
    for g, w in zip(_parts(face(*args)), _parts(raw(*args)), strict=True):
        np.testing.assert_array_equal(g, w)
    assert face.__wrapped__ is raw
    assert pickle.loads(pickle.dumps(face)) is face
    assert "Integer class labels" in face.__doc__


def test_one_hot_helper():
    np.testing.assert_array_equal(L.one_hot(np.array([[1], [0]]), 2), [[[0, 1]], [[1, 0]]])
    assert L.one_hot(np.array([], dtype=int), 4).shape == (0, 4)
    with pytest.raises(TypeError, match="one_hot: class labels must be integers, got dtype"):
        L.one_hot(np.array(["a"]), 2)


# ------------------------------------------------------------- the callers of one_hot


def _softmax_regression(y):
    model = SoftmaxRegression(3)
    params = model.init(n_features=2)
    params["W"] = RNG.normal(size=(2, 3))
    return model.objective(params, np.ones((4, 2)) + np.arange(4)[:, None], y)


def _mlp(y):
    model = MLP([2, 3, 3])
    return model.objective(model.init(0), np.ones((4, 2)) + np.arange(4)[:, None], y)


def _boosting(y):
    return boosting.xgboost("softmax_cross_entropy").grad_hess(RNG.normal(size=(4, 3)), y)


#: Every caller that turns class labels into one-hot rows, and the name its errors carry.
CALLERS = {"SoftmaxRegression": (_softmax_regression, "y"), "MLP": (_mlp, "y")}
CALLERS["boosting"] = (_boosting, "softmax_cross_entropy")


def _flat(result) -> list:
    """Return (loss, grads dict) or (grad, hess) as a flat list of arrays."""
    out = []
    for part in result:
        out.extend(part.values() if isinstance(part, dict) else [part])
    return out


@pytest.mark.parametrize("caller", CALLERS)
def test_callers_encode_labels_as_one_hot_rows(caller):
    """Labels (int, or whole floats) give what one_hot's rows give: one encoding for all."""
    fn, _ = CALLERS[caller]
    labels = np.array([2, 0, 1, 2])
    for y in (labels, labels.astype(float)):
        state = RNG.bit_generator.state  # the same random scores for both calls
        got = fn(y)
        RNG.bit_generator.state = state
        want = fn(L.one_hot(labels, 3))
        for g, w in zip(_flat(got), _flat(want), strict=True):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize(
    "y, error, words",
    [
        ([0, 3, 1, 2], ValueError, r"class labels must lie in \[0, 3\) for 3 classes"),
        ([0, -1, 1, 2], ValueError, r"class labels must lie in \[0, 3\)"),
        ([0, 0.5, 1, 2], ValueError, r"class labels must be whole numbers in \[0, 3\), got 0.5"),
        ([0, np.inf, 1, 2], ValueError, r"class labels must be (whole numbers|finite)"),
        ([0, np.nan, 1, 2], ValueError, r"class labels must be (whole numbers|finite)"),
    ],
)
@pytest.mark.parametrize("caller", CALLERS)
def test_callers_refuse_bad_labels_as_one_hot_does(caller, y, error, words):
    fn, name = CALLERS[caller]
    with pytest.raises(error, match=f"^{name}: .*{words}"):
        fn(np.array(y))


@pytest.mark.parametrize("caller", ["SoftmaxRegression", "MLP"])
def test_models_refuse_labels_that_are_not_numbers(caller):
    fn, _ = CALLERS[caller]
    with pytest.raises(TypeError, match=r"^y: class labels must be integers, got dtype <U1"):
        fn(np.array(["a", "b", "a", "c"]))
    with pytest.raises(TypeError, match=r"^y: class labels must be integers, got dtype bool"):
        fn(np.array([True, False, True, True]))


@pytest.mark.parametrize(
    "y, error, words",
    [
        ([0, 3, 1, 2], ValueError, r"class labels must lie in \[0, 3\) for 3 classes"),
        ([0, 0.5, 1, 2], ValueError, r"class labels must be whole numbers in \[0, 3\)"),
        ([0, np.inf, 1, 2], ValueError, r"class labels must be whole numbers in \[0, 3\)"),
        ([True, False, True, True], TypeError, r"class labels must be integers, got dtype"),
    ],
)
def test_the_array_api_path_refuses_bad_labels_in_the_same_words(y, error, words):
    """An Array API X takes the models' other path; its labels get one_hot's checks."""
    xps = pytest.importorskip("array_api_strict")
    model = SoftmaxRegression(3)
    X = xps.asarray(np.ones((4, 2)))
    params = {key: xps.asarray(v) for key, v in model.init(n_features=2).items()}
    with pytest.raises(error, match=f"^y: {words}"):
        model.objective(params, X, xps.asarray(np.array(y)))
    with pytest.raises(error, match=f"^y: {words}"):
        model.objective(model.init(n_features=2), np.ones((4, 2)), np.array(y))


@pytest.mark.parametrize(
    "y, words",
    [
        (np.zeros((4, 2)), r"^target rows y have shape \(4, 2\), expected \(4, 3\)"),
        (
            np.zeros(3, int),
            r"^y must be 4 integer labels or \(4, 3\) target rows, got shape \(3,\)",
        ),
    ],
)
def test_both_paths_refuse_targets_of_the_wrong_shape_in_the_same_words(y, words):
    xps = pytest.importorskip("array_api_strict")
    model = SoftmaxRegression(3)
    params = model.init(n_features=2)
    with pytest.raises(ValueError, match=words):
        model.objective(params, np.ones((4, 2)), y)
    foreign = {key: xps.asarray(v) for key, v in params.items()}
    with pytest.raises(ValueError, match=words):
        model.objective(foreign, xps.asarray(np.ones((4, 2))), xps.asarray(y))
