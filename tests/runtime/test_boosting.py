"""symgrad's boosting objectives trained through real XGBoost and LightGBM: built-in-equivalent
losses reproduce the libraries' own objectives, user specs train, zero Hessians are handled."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import sympy as sp
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

import symgrad
from symgrad import boosting
from symgrad.errors import HessianWarning

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

ROUNDS = 8
XGB = {"nthread": 1, "max_depth": 3, "eta": 0.3, "seed": 0}
LGB = {"verbose": -1, "num_threads": 1, "seed": 0, "deterministic": True, "num_leaves": 8}
#: (symgrad loss, its options, XGBoost built-in, LightGBM built-in, dataset)
EQUIVALENT = [
    ("binary_cross_entropy_with_logits", {}, "binary:logistic", "binary", load_breast_cancer),
    # the libraries' squared error is (yhat - y)**2 / 2
    ("mse", {"scale": 0.5}, "reg:squarederror", "regression", load_diabetes),
    ("softmax_cross_entropy", {}, "multi:softprob", "multiclass", load_iris),
]


def _data(load, seed: int = 0):
    X, y = load(return_X_y=True)
    return X, y.astype(float), np.random.default_rng(seed).uniform(0.2, 3.0, len(y))


def _centred(m: np.ndarray) -> np.ndarray:
    """Softmax margins are defined up to a constant per row."""
    return m - m.mean(axis=1, keepdims=True) if m.ndim == 2 else m


@symgrad.loss
def pseudo_huber(yhat, y, delta=20.0):
    """Pseudo-Huber loss: quadratic near the target, linear far from it."""
    return delta**2 * (sp.sqrt(1 + ((yhat - y) / delta) ** 2) - 1)


@symgrad.loss
def quantile(yhat, y, q=0.8):
    """Pinball loss of the q-quantile."""
    r = y - yhat
    return sp.Max(q * r, (q - 1) * r)


@symgrad.loss
def focal(yhat, y, gamma=2.0):
    """Focal loss on logits (non-convex: its second derivative changes sign)."""
    p = 1 / (1 + sp.exp(-yhat))
    pt = y * p + (1 - y) * (1 - p)
    return -((1 - pt) ** gamma) * sp.log(pt)


@pytest.mark.parametrize(("loss", "options", "xgb_name", "lgb_name", "load"), EQUIVALENT)
def test_xgboost_native_reproduces_the_builtin(loss, options, xgb_name, lgb_name, load):
    X, y, w = _data(load)
    extra = {"num_class": 3} if load is load_iris else {}
    d = xgb.DMatrix(X, y, weight=w)
    builtin = xgb.train({**XGB, **extra, "objective": xgb_name}, d, ROUNDS)
    obj = boosting.xgboost(loss, **options)
    start = obj.base_score(y, w)
    ours = xgb.train({**XGB, **extra, "base_score": start}, d, ROUNDS, obj=obj.objective)
    # the built-in estimates the same intercept (a probability for binary:logistic)
    theirs = json.loads(builtin.save_config())["learner"]["learner_model_param"]["base_score"]
    theirs = np.array(json.loads(theirs.replace("E", "e")), dtype=float)
    if xgb_name == "binary:logistic":
        theirs = np.log(theirs / (1 - theirs))
    np.testing.assert_allclose(theirs, start, rtol=1e-6, atol=1e-6)
    a, b = (m.predict(d, output_margin=True) for m in (builtin, ours))
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max())
    name, value = obj.metric(b, d)
    assert name == loss and value == pytest.approx(obj.value(b, y, w))


@pytest.mark.parametrize(("loss", "options", "xgb_name", "lgb_name", "load"), EQUIVALENT)
def test_lightgbm_native_reproduces_the_builtin(loss, options, xgb_name, lgb_name, load):
    X, y, w = _data(load)
    extra = {"num_class": 3} if load is load_iris else {}
    builtin = lgb.train(
        {**LGB, **extra, "objective": lgb_name}, lgb.Dataset(X, y, weight=w), ROUNDS
    )
    obj = boosting.lightgbm(loss, **options)
    init = obj.init_score(y, w)
    train = lgb.Dataset(X, y, weight=w, init_score=init)
    evals: dict = {}
    ours = lgb.train(
        {**LGB, **extra, "objective": obj.objective},
        train,
        ROUNDS,
        valid_sets=[train],
        feval=obj.metric,
        callbacks=[lgb.record_evaluation(evals)],
    )
    obj.fold_init_score(ours, init)
    raw = ours.predict(X, raw_score=True)
    a, b = _centred(builtin.predict(X, raw_score=True)), _centred(raw)
    np.testing.assert_allclose(b, a, rtol=1e-7, atol=1e-7)
    assert evals["training"][loss][-1] == pytest.approx(obj.value(raw, y, w), rel=1e-7)


def test_xgboost_sklearn_classifiers_reproduce_the_builtin():
    for load in (load_breast_cancer, load_iris):
        X, y, w = _data(load)
        loss = "softmax_cross_entropy" if load is load_iris else "binary_cross_entropy_with_logits"
        obj = boosting.xgboost(loss)
        kw = {"n_estimators": ROUNDS, "max_depth": 3, "n_jobs": 1, "random_state": 0}
        builtin = xgb.XGBClassifier(**kw).fit(X, y, sample_weight=w)
        ours = xgb.XGBClassifier(
            objective=obj.sklearn_objective,
            base_score=obj.base_score(y, w, classifier=True),
            eval_metric=obj.sklearn_metric,
            **kw,
        ).fit(X, y, sample_weight=w, eval_set=[(X, y)], verbose=False)
        np.testing.assert_allclose(ours.predict_proba(X), builtin.predict_proba(X), atol=2e-6)
        assert loss in ours.evals_result()["validation_0"]


def test_sklearn_regressors_reproduce_the_builtin():
    X, y, w = _data(load_diabetes)
    xo = boosting.xgboost("mse", scale=0.5)
    kw = {"n_estimators": ROUNDS, "max_depth": 3, "n_jobs": 1, "random_state": 0}
    builtin = xgb.XGBRegressor(**kw).fit(X, y, sample_weight=w)
    ours = xgb.XGBRegressor(objective=xo.sklearn_objective, base_score=xo.base_score(y, w), **kw)
    ours.fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.predict(X), builtin.predict(X), rtol=1e-5)

    lo = boosting.lightgbm("mse", scale=0.5)
    kw = {"n_estimators": ROUNDS, "num_leaves": 8, "n_jobs": 1, "random_state": 0, "verbose": -1}
    builtin = lgb.LGBMRegressor(deterministic=True, **kw).fit(X, y, sample_weight=w)
    ours = lgb.LGBMRegressor(objective=lo.sklearn_objective, deterministic=True, **kw)
    init = lo.init_score(y, w)
    ours.fit(X, y, sample_weight=w, init_score=init)
    lo.fold_init_score(ours.booster_, init)
    np.testing.assert_allclose(ours.predict(X), builtin.predict(X), rtol=1e-7)
    name, value, higher = lo.sklearn_metric(y, ours.predict(X), w)
    assert (name, higher) == ("mse", False)
    assert value == pytest.approx(np.average((ours.predict(X) - y) ** 2, weights=w))


def _split(load):
    X, y = load(return_X_y=True)
    order = np.random.default_rng(1).permutation(len(y))
    tr, te = order[: 2 * len(y) // 3], order[2 * len(y) // 3 :]
    return X[tr], y[tr].astype(float), X[te], y[te].astype(float)


@pytest.mark.parametrize(
    ("loss", "options", "load"),
    [
        (pseudo_huber, {}, load_diabetes),
        (quantile, {"hyper": {"q": 0.8}, "constant": 0.02}, load_diabetes),
        (focal, {"hessian": "abs"}, load_breast_cancer),
        ("l1", {"constant": 0.02}, load_diabetes),
        ("huber", {"hyper": {"delta": 30.0}}, load_diabetes),
    ],
)
def test_user_specs_and_kinked_losses_beat_the_constant(loss, options, load):
    """Held-out loss of a few rounds through each library's scikit-learn API, against the
    optimal constant (the start both libraries begin from)."""
    Xtr, ytr, Xte, yte = _split(load)
    xo, lo = boosting.xgboost(loss, **options), boosting.lightgbm(loss, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HessianWarning)
        start = xo.base_score(ytr)
        xm = xgb.XGBRegressor(objective=xo.sklearn_objective, base_score=start, n_estimators=20)
        xm.set_params(max_depth=3, n_jobs=1, random_state=0).fit(Xtr, ytr)
        lm = lgb.LGBMRegressor(objective=lo.sklearn_objective, n_estimators=20, num_leaves=8)
        init = lo.init_score(ytr)
        lm.set_params(n_jobs=1, random_state=0, verbose=-1).fit(Xtr, ytr, init_score=init)
        lo.fold_init_score(lm.booster_, init)
    constant = xo.value(np.full(len(yte), start), yte)
    raw = (xm.predict(Xte, output_margin=True), lm.predict(Xte, raw_score=True))
    for pred in raw:
        assert xo.value(pred, yte) < 0.97 * constant


def test_zero_hessians_warn_and_the_policy_lets_trees_split():
    X, y, _ = _data(load_diabetes)
    d = xgb.DMatrix(X, y)
    exact = boosting.xgboost("l1", hessian="exact")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a policy the caller chose: no warning
        stuck = xgb.train({**XGB, "base_score": exact.base_score(y)}, d, 3, obj=exact.objective)
    safe = boosting.xgboost("l1")
    with pytest.warns(
        HessianWarning,
        match=r"l1: the second derivative is zero or negative on 100%.*"
        r"hessian='auto' uses 0.01\d+ \(from the target's spread\) there",
    ):
        learnt = xgb.train({**XGB, "base_score": safe.base_score(y)}, d, 3, obj=safe.objective)
    leaves = [t.count("leaf=") for t in learnt.get_dump()]
    assert all(n > 1 for n in leaves), leaves  # every tree split
    assert all(t.count("leaf=") == 1 for t in stuck.get_dump())  # Σh = 0 < min_child_weight
    start = np.full(len(y), safe.base_score(y))
    assert safe.value(learnt.predict(d, output_margin=True), y) < safe.value(start, y)


@pytest.mark.parametrize(
    ("policy", "want"),
    [
        ("exact", [2.0, 0.0, -1.0, 1e-9]),
        ("auto", [2.0, 0.5, 0.5, 1e-9]),
        ("floor", [2.0, 1e-3, 1e-3, 1e-3]),
        ("abs", [2.0, 1e-3, 1.0, 1e-3]),
        ("constant", [0.5, 0.5, 0.5, 0.5]),
    ],
)
def test_hessian_policies(policy, want):
    obj = boosting.Objective("mse", hessian=policy, floor=1e-3, constant=0.5, warn_share=1.0)
    got = obj.safe_hessian(np.array([2.0, 0.0, -1.0, 1e-9]))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("policy", "want"),
    [
        ("exact", [2.0, 1e-4, 1e-9]),
        ("auto", [2.0, 1e-4, 1e-9]),
        ("floor", [2.0, 1e-3, 1e-3]),
        ("abs", [2.0, 1e-3, 1e-3]),
        ("constant", [0.5, 0.5, 0.5]),
    ],
)
def test_hessian_policies_where_every_value_is_positive(policy, want):
    # the one-reduction path (min(h) > 0) gives what the general path gives
    obj = boosting.Objective("mse", hessian=policy, floor=1e-3, constant=0.5)
    h = np.array([2.0, 1e-4, 1e-9])
    np.testing.assert_array_equal(obj.safe_hessian(h), want)
    np.testing.assert_array_equal(obj.safe_hessian(h, lowest=1e-9), want)
    np.testing.assert_array_equal(obj.safe_hessian(h[:0]), [])
    # a NaN takes the general path: 'auto' puts the constant there
    if policy == "auto":
        np.testing.assert_array_equal(obj.safe_hessian(np.array([2.0, np.nan])), [2.0, 0.5])


#: Margins where a textbook sigmoid loses digits or overflows (as the brief for issue 19 lists).
AWKWARD = [0.0, -0.0, 1e-8, -1e-8, 1.0, -1.0, 30.0, -30.0, 300.0, -300.0, 700.0, -700.0]


def _logistic_reference(m: float, y: float) -> tuple[float, float]:
    """Return p - y and p (1 - p), p = 1 / (1 + exp(-m)), in 800-digit arithmetic (1 - p
    at m = 700 is 1e-304: the textbook formula needs ~320 digits before it cancels right)."""
    import mpmath

    with mpmath.workdps(800):
        p = 1 / (1 + mpmath.exp(-mpmath.mpf(m)))
        return float(p - mpmath.mpf(y)), float(p * (1 - p))


@pytest.mark.parametrize("label", [0.0, 1.0, 0.25])
def test_logistic_objective_matches_a_high_precision_reference(label):
    m = np.array(AWKWARD)
    y = np.full(m.shape, label)
    grad, hess = boosting.xgboost("binary_cross_entropy_with_logits").grad_hess(m, y)
    want = np.array([_logistic_reference(v, label) for v in AWKWARD])
    # relative accuracy in both tails: p - 1 at m = 30 is -9.4e-14, not a rounded 1 - 1
    np.testing.assert_allclose(grad, want[:, 0], rtol=1e-14, atol=0)
    np.testing.assert_allclose(hess, want[:, 1], rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    ("loss", "shape", "options"),
    [
        ("binary_cross_entropy_with_logits", (200_003,), {}),
        ("poisson_nll", (200_003,), {}),
        ("mse", (70_001, 2), {"scale": 0.5}),  # multi-output: blocks cut through rows
        ("huber", (150_000,), {"hyper": {"delta": 0.5}}),  # h = 0 on part of it
    ],
)
def test_large_inputs_give_what_one_kernel_call_gives(loss, shape, options):
    # above symgrad.blocked.DEFAULT_BLOCK elements the kernel runs block by block: the very
    # same numbers as one call of the emitted _grad_hess, then the policy and the weights
    rng = np.random.default_rng(5)
    yhat = rng.normal(scale=4.0, size=shape)
    y = rng.poisson(3.0, size=shape).astype(float) if loss == "poisson_nll" else rng.random(shape)
    w = rng.uniform(0.0, 2.0, size=shape[0])
    obj = boosting.xgboost(loss, warn_share=1.0, **options)
    grad, hess = obj.grad_hess(yhat, y, w)
    module = __import__("generated.losses", fromlist=["_"])
    g, h = getattr(module, f"{loss}_grad_hess")(yhat, y, count=1, **obj.hyper)
    ws = w.reshape((-1,) + (1,) * (len(shape) - 1))
    scale = obj.scale
    safe = np.where(h > 0, h, obj.constant_in_use)
    np.testing.assert_array_equal(grad, g * ws * scale)
    np.testing.assert_array_equal(hess, safe * ws * scale)
    assert grad.shape == hess.shape == shape and grad.flags.c_contiguous


@pytest.mark.parametrize(
    ("loss", "shape", "options"),
    [
        ("binary_cross_entropy_with_logits", (1_000_003,), {}),
        ("poisson_nll", (300_001,), {}),
        ("huber", (500_000,), {"hyper": {"delta": 0.5}}),  # h = 0 on part of it
        ("mse", (200_001, 3), {"scale": 0.5}),  # 2-D: blocks cut through rows
        ("softmax_cross_entropy", (70_000, 3), {}),  # class axis: one kernel call
    ],
)
def test_every_thread_count_gives_the_same_numbers_bit_for_bit(loss, shape, options):
    # threads split the blocks between symgrad.blocked's pool; blocks are element-wise, so
    # 1, 2, 3 threads and the default (every core) give identical bits, weights included
    rng = np.random.default_rng(8)
    yhat = rng.normal(scale=4.0, size=shape)
    if loss == "poisson_nll":
        y = rng.poisson(3.0, size=shape).astype(float)
    elif loss == "softmax_cross_entropy":
        y = rng.integers(0, shape[1], size=shape[0]).astype(float)
    else:
        y = rng.random(shape)
    w = rng.uniform(0.0, 2.0, size=shape[0])
    for make in (boosting.xgboost, boosting.lightgbm):
        one = make(loss, threads=1, warn_share=1.0, **options).grad_hess(yhat, y, w)
        for threads in (2, 3, None):
            obj = make(loss, threads=threads, warn_share=1.0, **options)
            got = obj.grad_hess(yhat, y, w)
            for a, b in zip(got, one, strict=True):
                assert a.shape == b.shape and a.tobytes() == b.tobytes(), (make, threads)


@pytest.mark.parametrize("make", [boosting.xgboost, boosting.lightgbm])
@pytest.mark.parametrize("n", [1000, 200_003])  # one kernel call, and block by block
def test_float32_scores_give_float32_derivatives_as_the_boosters_keep_them(make, n):
    # XGBoost and LightGBM hand float32 margins to a custom objective and keep float32
    # gradients: the objective computes in float32 (no conversion either way), the same
    # numbers as the emitted kernel on float32, within a few float32 ulps of float64's
    rng = np.random.default_rng(12)
    yhat = rng.normal(scale=4.0, size=n).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    obj = make("binary_cross_entropy_with_logits")
    grad, hess = obj.grad_hess(yhat, y)
    assert grad.dtype == hess.dtype == np.float32
    module = __import__("generated.losses", fromlist=["_"])
    g, h = module.binary_cross_entropy_with_logits_grad_hess(yhat, y, count=1)
    np.testing.assert_array_equal(grad, g)
    np.testing.assert_array_equal(hess, h)
    g64, h64 = obj.grad_hess(yhat.astype(np.float64), y.astype(np.float64))
    assert g64.dtype == np.float64
    np.testing.assert_allclose(grad, g64, rtol=4e-7, atol=0)
    np.testing.assert_allclose(hess, h64, rtol=4e-7, atol=0)


def test_a_float32_hessian_of_zero_is_decided_in_float64():
    # the logistic's h underflows to 0 in float32 beyond |z| ~ 88 (not a zero of the loss):
    # that call and every later one run in float64, so the Hessian policy sees h > 0 as before
    yhat = np.array([0.5, -3.0, 120.0, -200.0], dtype=np.float32)
    y = np.array([1.0, 0.0, 1.0, 1.0], dtype=np.float32)
    obj = boosting.xgboost("binary_cross_entropy_with_logits")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no HessianWarning: no h is replaced
        grad, hess = obj.grad_hess(yhat, y)
    want = boosting.xgboost("binary_cross_entropy_with_logits").grad_hess(
        yhat.astype(np.float64), y.astype(np.float64)
    )
    assert grad.dtype == hess.dtype == np.float64
    np.testing.assert_array_equal(grad, want[0])
    np.testing.assert_array_equal(hess, want[1])
    assert hess[2] > 0 and hess[3] > 0
    assert obj.grad_hess(yhat[:2], y[:2])[0].dtype == np.float64  # it stays on float64


def test_threads_run_the_blocks_on_symgrad_blocked_pool():
    # the option is wired: threads=7 starts pool threads (no other test asks for 7), threads=1
    # and an input of one block start none
    import threading

    def pool_threads() -> int:
        return sum(t.name.startswith("symgrad-block") for t in threading.enumerate())

    rng = np.random.default_rng(2)
    z, y = rng.normal(size=1_000_000), rng.random(1_000_000)
    before = pool_threads()
    boosting.xgboost("binary_cross_entropy_with_logits", threads=1).grad_hess(z, y)
    boosting.xgboost("binary_cross_entropy_with_logits", threads=7).grad_hess(z[:1000], y[:1000])
    assert pool_threads() == before
    boosting.lightgbm("binary_cross_entropy_with_logits", threads=7).grad_hess(z, y)
    assert pool_threads() > before


def test_xgboost_trains_as_the_builtin_on_more_rows_than_a_block():
    # 100k rows: the objective runs block by block on every round
    rng = np.random.default_rng(11)
    X = rng.normal(size=(100_000, 6))
    y = (X @ rng.normal(size=6) + rng.logistic(size=100_000) > 0).astype(float)
    d = xgb.DMatrix(X, y)
    params = {**XGB, "tree_method": "hist"}
    builtin = xgb.train({**params, "objective": "binary:logistic"}, d, 4)
    obj = boosting.xgboost("binary_cross_entropy_with_logits")
    ours = xgb.train({**params, "base_score": obj.base_score(y)}, d, 4, obj=obj.objective)
    a, b = (m.predict(d, output_margin=True) for m in (builtin, ours))
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max())


@pytest.mark.parametrize(
    ("loss", "options", "want"),
    [
        ("mse", {}, lambda y, w: np.average(y, weights=w)),
        ("l1", {}, lambda y, w: _weighted_quantile(y, w, 0.5)),
        ("pinball", {"hyper": {"tau": 0.9}}, lambda y, w: _weighted_quantile(y, w, 0.9)),
        ("huber", {"hyper": {"delta": 1e6}}, lambda y, w: np.average(y, weights=w)),
    ],
)
def test_constant_start_is_the_weighted_optimum(loss, options, want):
    rng = np.random.default_rng(3)
    y = rng.standard_t(2, size=301) * 40 + 150
    w = rng.uniform(0.5, 2.0, size=301)
    got = boosting.xgboost(loss, **options).base_score(y, w)
    assert got == pytest.approx(want(y, w), rel=1e-9)


def _weighted_quantile(y, w, q):
    order = np.argsort(y)
    cum = np.cumsum(w[order]) / np.sum(w)
    return y[order][np.searchsorted(cum, q)]


def test_bad_options_raise_one_clear_error():
    with pytest.raises(ValueError, match="hessian='newton' is not a policy"):
        boosting.xgboost("mse", hessian="newton")
    with pytest.raises(ValueError, match="loss 'huber' has no hyper-parameter 'tau'"):
        boosting.lightgbm("huber", hyper={"tau": 0.5})
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 3\)"):
        boosting.xgboost("softmax_cross_entropy").grad_hess(np.zeros((2, 3)), [0, 3])


@pytest.mark.filterwarnings("ignore::symgrad.errors.HessianWarning")
def test_fitted_models_with_symgrad_objectives_pickle():
    import pickle

    X, y, _ = _data(load_diabetes)
    xo = boosting.xgboost("huber", hyper={"delta": 30.0}, hessian="floor", floor=0.1)
    model = xgb.XGBRegressor(objective=xo.sklearn_objective, n_estimators=3, n_jobs=1)
    model.set_params(base_score=xo.base_score(y)).fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    copy = pickle.loads(pickle.dumps(xo))
    assert (copy.hyper, copy.hessian, copy.floor) == ({"delta": 30.0}, "floor", 0.1)


def test_the_objective_benchmark_checks_alignment_and_reports_its_goals(capsys):
    # tiny sizes: agreement, not speed (the blocked path runs: 70k rows > one block)
    from benchmarks import boosting_objective

    boosting_objective.main(["--rows", "70000", "--cols", "3", "--rounds", "1", "--repeats", "1"])
    out = capsys.readouterr().out
    assert out.startswith("aligned: objective = emitted kernel exactly")
    assert "hand objective" in out and "goals (issue 19)" in out
    for view in ("XGBoost's defaults (all cores)", "nthread=1"):
        assert f"  {view}: call <= 1.00x hand" in out
        assert f"training <= 1.05x binary:logistic at {view}" in out
    assert "symgrad threads=1:" in out and "symgrad at its default threads (all" in out
