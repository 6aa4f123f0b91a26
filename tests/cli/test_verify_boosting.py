"""``symgrad verify`` notes a loss whose second derivative is zero or negative on much of its
domain: a boosting library's Newton step is undefined there."""

from __future__ import annotations

import sympy as sp

import symgrad as sg
from symgrad import cli
from symgrad.testing import FLAT_SHARE, verify_spec

USER = '''
import sympy as sp
import symgrad


@symgrad.loss
def pinball80(yhat, y):
    """Quantile loss, q = 0.8: piecewise linear, so its second derivative is 0."""
    r = y - yhat
    return sp.Max(0.8 * r, -0.2 * r)


@symgrad.loss
def log_cosh2(yhat, y):
    """Smooth and convex: positive curvature everywhere."""
    return sp.log(sp.cosh(yhat - y))
'''


@sg.loss
def tukey(yhat, y, c=1.0):
    """Tukey's biweight: flat beyond c, negative curvature on part of (-c, c)."""
    r = yhat - y
    inner = c**2 / 6 * (1 - (1 - (r / c) ** 2) ** 3)
    return sp.Piecewise((inner, sp.Abs(r) <= c), (c**2 / 6, True))


@sg.loss
def squared(yhat, y):
    """Half the squared error."""
    return (yhat - y) ** 2 / 2


def test_verify_measures_the_share_of_flat_or_negative_curvature():
    flat = verify_spec(tukey, sg.compile(tukey))
    assert flat.ok, flat.problems()
    assert flat.flat_share > FLAT_SHARE
    assert "unusable for boosting as it stands" in flat.notes()[0]
    convex = verify_spec(squared, sg.compile(squared))
    assert convex.flat_share == 0.0 and convex.notes() == []


def test_cli_verify_notes_losses_unusable_for_boosting(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_losses.py").write_text(USER)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["verify", "my_losses.py"]) == 0  # a note, not a failure
    err = capsys.readouterr().err
    assert (
        "note my_losses.pinball80: the second derivative is zero or negative on 100% of the "
        "sampled points: unusable for boosting as it stands"
    ) in err
    assert "log_cosh2" not in err
    assert err.endswith("2 kernels checked, 0 failed\n")
