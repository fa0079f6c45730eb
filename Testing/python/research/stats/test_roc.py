"""ROC / AUC / DeLong against R's pROC on its aSAH data (outcome "Poor" = case).

Reference values: the refdata README and pROC's own test suite (tests/testthat/test-roc.test.R,
test-ci.auc.R, helper-coords-expected.R in xrobin/pROC), all produced by R.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.stats import roc
from conftest import refdata_path

TOL = 1e-6


@pytest.fixture(scope="module")
def asah():
    data = pd.read_csv(refdata_path("statistics", "aSAH.csv"))
    return (data["outcome"] == "Poor").to_numpy(), data


def test_auc_equals_proc(asah):
    y, data = asah
    assert roc.auc(y, data["wfns"]) == pytest.approx(0.823678861788618, abs=TOL)
    assert roc.auc(y, data["s100b"]) == pytest.approx(0.73136856368563685, abs=TOL)
    assert roc.auc(y, data["ndka"]) == pytest.approx(0.611957994579946, abs=TOL)


def test_auc_ci_equals_proc_ci_auc_delong(asah):
    y, data = asah
    result = roc.auc_ci(y, data["ndka"])
    # pROC test-ci.auc.R: expected.ci.auc
    assert result.ci[0] == pytest.approx(0.501244999271703, abs=TOL)
    assert result.auc == pytest.approx(0.611957994579946, abs=TOL)
    assert result.ci[1] == pytest.approx(0.722670989888189, abs=TOL)
    # the CI is AUC +- qnorm(0.975) * sqrt(DeLong variance)
    half = 1.959963984540054 * np.sqrt(result.variance)
    assert result.ci == pytest.approx((result.auc - half, result.auc + half), abs=1e-12)
    # pROC: ci.auc(aSAH$outcome, -aSAH$ndka) with direction auto ('>') gives the same interval
    flipped = roc.auc_ci(y, -data["ndka"], direction="auto")
    assert flipped.direction == "lower"
    assert flipped.ci == pytest.approx(result.ci, abs=1e-12)


@pytest.mark.parametrize(("a", "b", "z", "p", "lo", "hi"), [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, 0.0104061769564846, 0.174214419249478),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, 0.0634011709339876, 0.3600405634833566),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054, -0.2876917446341914, 0.0488706064228094),
])
def test_paired_delong_equals_proc_roc_test(asah, a, b, z, p, lo, hi):
    y, data = asah
    test = roc.delong_paired_test(y, data[a], data[b])
    assert test.statistic == pytest.approx(z, abs=TOL)
    assert test.p == pytest.approx(p, abs=TOL)
    assert test.ci[0] == pytest.approx(lo, abs=TOL)
    assert test.ci[1] == pytest.approx(hi, abs=TOL)
    reverse = roc.delong_paired_test(y, data[b], data[a])
    assert reverse.statistic == pytest.approx(-z, abs=TOL) and reverse.p == pytest.approx(p, abs=TOL)


@pytest.mark.parametrize(("a", "b", "d", "p"), [
    ("wfns", "s100b", 1.43490640926908, 0.152825378808796),
    ("wfns", "ndka", 3.10125096778969, 0.00220950791756457),
    ("ndka", "s100b", -1.55995743389685, 0.120192832430845),
])
def test_unpaired_delong_equals_proc_roc_test(asah, a, b, d, p):
    y, data = asah
    test = roc.delong_unpaired_test(y, data[a], y, data[b])
    assert not test.paired
    assert test.statistic == pytest.approx(d, abs=TOL)
    assert test.p == pytest.approx(p, abs=TOL)
    # D = (AUC1 - AUC2) / sqrt(V1 + V2)
    v1, v2 = roc.auc_ci(y, data[a]).variance, roc.auc_ci(y, data[b]).variance
    assert test.statistic == pytest.approx(test.difference / np.sqrt(v1 + v2), rel=1e-12)


def test_identical_curves_give_z0_p1(asah):
    y, data = asah
    test = roc.delong_paired_test(y, data["wfns"], data["wfns"])
    assert (test.statistic, test.p) == (0.0, 1.0)


def test_roc_curve_thresholds_and_youden_point_equal_proc(asah):
    y, data = asah
    curve = roc.roc_curve(y, data["s100b"])
    # pROC coords(r.s100b, "all"): 51 thresholds from -Inf to Inf, midpoints between distinct values
    assert curve.thresholds.size == 51
    assert curve.thresholds[0] == -np.inf and curve.thresholds[-1] == np.inf
    assert curve.thresholds[1] == pytest.approx(0.035, abs=1e-12)
    assert (curve.sensitivity[0], curve.specificity[0]) == (1.0, 0.0)
    assert (curve.sensitivity[-1], curve.specificity[-1]) == (0.0, 1.0)
    best = np.argmax(curve.sensitivity + curve.specificity)
    # pROC coords(r.s100b, "best"): threshold 0.205, specificity 58/72, sensitivity 26/41
    assert curve.thresholds[best] == pytest.approx(0.205, abs=1e-12)
    assert curve.specificity[best] == pytest.approx(58 / 72, abs=1e-12)
    assert curve.sensitivity[best] == pytest.approx(26 / 41, abs=1e-12)
    # trapezoidal area under the curve equals the rank AUC
    fpr = curve.false_positive_rate
    assert np.trapezoid(curve.sensitivity[::-1], fpr[::-1]) == pytest.approx(curve.auc, abs=1e-12)


def _delong_bruteforce(y, scores):
    """DeLong et al. 1988 written out with the O(m*n) kernel psi, as a second, independent computation."""
    y = np.asarray(y, dtype=bool)
    v10, v01, aucs = [], [], []
    for s in scores:
        x, z = s[y][:, None], s[~y][None, :]
        psi = (x > z) + 0.5 * (x == z)
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
        aucs.append(psi.mean())
    v10, v01 = np.array(v10), np.array(v01)
    return np.array(aucs), np.cov(v10) / y.sum() + np.cov(v01) / (~y).sum()


def test_fast_delong_equals_bruteforce_with_ties():
    rng = np.random.default_rng(7)
    for n in (12, 57, 200):
        y = rng.random(n) < 0.4
        y[:2] = [True, False]
        a = np.round(rng.normal(size=n) + y, 1)  # rounding makes many ties
        b = rng.integers(0, 4, size=n) + 0.5 * y
        aucs, cov = roc.delong_covariance(y, [a, b])
        ref_aucs, ref_cov = _delong_bruteforce(y, [a, b])
        np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
        np.testing.assert_allclose(cov, ref_cov, atol=1e-12)


def test_direction_lower_and_auto():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    score = np.array([5.0, 4, 6, 1, 2, 3, 2, 7])
    assert roc.auc(y, score, "lower") == pytest.approx(1 - roc.auc(y, score, "higher"))
    assert roc.resolve_direction(y, score, "auto") == "lower"
    assert roc.resolve_direction(y, score, "<") == "higher"  # pROC alias
    curve = roc.roc_curve(y, score, "lower")
    assert np.all(np.diff(curve.thresholds) < 0)  # on the score's own scale they decrease
    assert np.all(np.diff(curve.sensitivity) <= 0)


def test_undefined_variance_with_one_case():
    result = roc.auc_ci([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3])
    assert result.auc == 1.0
    assert np.isnan(result.variance) and np.isnan(result.ci[0])


@pytest.mark.parametrize(("y", "score", "message"), [
    ([1, 1, 1], [0.1, 0.2, 0.3], "only one class"),
    ([0, 1, 2], [0.1, 0.2, 0.3], "0/1"),
    ([0, 1, 1], [0.1, np.nan, 0.3], "missing"),
    ([0, 1, 1], ["a", "b", "c"], "not numeric"),
    ([0, 1, 1], [0.1, 0.2], "has 2 values"),
    ([0, 1, 1], [0.1, np.inf, 0.3], "infinite"),
])
def test_bad_input_is_refused_with_a_clear_message(y, score, message):
    with pytest.raises(InputError, match=message):
        roc.auc(y, score)


def test_bad_direction_and_level_are_refused():
    with pytest.raises(InputError, match="direction"):
        roc.auc([0, 1], [0.1, 0.2], direction="up")
    with pytest.raises(InputError, match="level"):
        roc.auc_ci([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], level=95)
