"""Hosmer-Lemeshow test = R's ResourceSelection::hoslem.test, on a logistic model fitted to mtcars.

R cannot run here, so the expected values come from three places:
- a published R output: the pkgdown example of `check_hosmer_lemeshow` (an R model-check package
  found with the code search) runs `glm(am ~ wt + hp, data = mtcars, family = binomial)` and
  `ResourceSelection::hoslem.test(model$y, fitted(model), g = min(10, floor(32 / 5)))` and prints
  "X-squared = 2.3502, df = 4, p-value = 0.6717" (4-5 significant digits);
- a second, plainly written computation (numpy quantiles + pandas cut + groupby) for g = 10;
- R's algorithm reproduced step by step in `calibration.py` (type-7 quantile formula, unique
  breaks, right-closed intervals with the lowest included, df = occupied groups - 2).
The model is fitted with statsmodels' GLM binomial, whose coefficients equal R's glm
(18.86630, -8.08348, 0.03626 in the R summary of this model).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.stats import calibration
from conftest import refdata_path


@pytest.fixture(scope="module")
def mtcars_fit():
    cars = pd.read_csv(refdata_path("statistics", "mtcars.csv"))
    design = sm.add_constant(cars[["hp", "wt"]])
    model = sm.GLM(cars["am"], design, family=sm.families.Binomial()).fit(tol=1e-12)
    return cars["am"].to_numpy(), model.fittedvalues.to_numpy(), model.params


def _hoslem_plain(y, p, g):
    """A second computation written differently: numpy's linear quantile, pandas cut and groupby."""
    breaks = np.unique(np.quantile(p, np.linspace(0.0, 1.0, g + 1)))
    groups = pd.cut(p, breaks, include_lowest=True, right=True)
    frame = pd.DataFrame({"y": y, "p": p, "g": groups}).groupby("g", observed=True)
    n, events, expected = frame.size(), frame["y"].sum(), frame["p"].sum()
    statistic = float((((events - expected) ** 2) / expected + ((n - events) - (n - expected)) ** 2 / (n - expected)).sum())
    df = len(n) - 2
    return statistic, df, float(stats.chi2.sf(statistic, df)), n.tolist()


def test_glm_coefficients_equal_r(mtcars_fit):
    _, _, params = mtcars_fit
    assert params["const"] == pytest.approx(18.86630, abs=5e-5)
    assert params["wt"] == pytest.approx(-8.08348, abs=5e-5)
    assert params["hp"] == pytest.approx(0.03626, abs=5e-5)


def test_hosmer_lemeshow_equals_published_r_output(mtcars_fit):
    y, p, _ = mtcars_fit
    result = calibration.hosmer_lemeshow(y, p, groups=6)
    assert result.df == 4
    assert result.statistic == pytest.approx(2.3502, abs=5e-5)
    assert result.p == pytest.approx(0.6717, abs=5e-5)


def test_hosmer_lemeshow_ten_groups_equals_independent_computation(mtcars_fit):
    y, p, _ = mtcars_fit
    result = calibration.hosmer_lemeshow(y, p, groups=10)
    statistic, df, pvalue, sizes = _hoslem_plain(y, p, 10)
    assert result.df == df == 8
    assert result.statistic == pytest.approx(statistic, abs=1e-9)
    assert result.p == pytest.approx(pvalue, abs=1e-9)
    # the value this gives (derived, see module docstring)
    assert result.statistic == pytest.approx(4.951742, abs=1e-5)
    assert result.p == pytest.approx(0.762721, abs=1e-5)
    assert [g.n for g in result.groups] == sizes and sum(sizes) == 32


def test_r_quantile_type7_matches_definition():
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    probs = calibration.r_seq_by(0.0, 1.0, 0.1)
    assert probs.size == 11 and probs[-1] == 1.0
    np.testing.assert_allclose(calibration.r_quantile_type7(x, probs), np.quantile(x, probs), atol=1e-12)
    # R: quantile(c(3,1,4,1,5,9,2,6), 0.3) = 1 + 0.1 * (2 - 1) = 2.1
    assert calibration.r_quantile_type7(x, [0.3])[0] == pytest.approx(2.1, abs=1e-12)
    # equal neighbours are not interpolated (R's x[hi] != qs rule)
    assert calibration.r_quantile_type7([1.0, 1.0, 2.0], [0.25])[0] == 1.0
    assert calibration.r_seq_by(0.0, 1.0, 1 / 3).size == 4


def test_groups_are_right_closed_with_lowest_included():
    p = np.array([0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    breaks, index = calibration.quantile_groups(p, groups=2)
    # breaks: 0.1, median 0.45, 0.9 -> [0.1, 0.45] and (0.45, 0.9]
    assert breaks == pytest.approx([0.1, 0.45, 0.9])
    assert index.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


def test_tied_predictions_reduce_the_groups_and_df():
    # a model with one binary predictor: two distinct predictions -> breaks collapse; R stops (G < 3)
    y = np.array([0, 0, 1, 0, 1, 1, 0, 1])
    p = np.array([0.25] * 4 + [0.75] * 4)
    with pytest.raises(InputError, match="at least 3 groups"):
        calibration.hosmer_lemeshow(y, p)
    # three distinct values: R's breaks are the values themselves and the lowest interval is
    # closed, so 0.2 and 0.5 share the first group -> 2 groups -> refused
    p3 = np.array([0.2] * 10 + [0.5] * 10 + [0.8] * 10)
    with pytest.raises(InputError, match="only 2"):
        calibration.hosmer_lemeshow(np.tile([0, 1], 15), p3)
    # fewer patients than groups: some intervals between breaks hold nobody (R adds 0/0 = NaN);
    # they are skipped and df counts the occupied groups
    p5 = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    y5 = np.array([0, 0, 1, 0, 1])
    result = calibration.hosmer_lemeshow(y5, p5)
    assert [g.n for g in result.groups] == [1, 1, 1, 1, 1]
    assert result.df == 3
    expected = sum((o - e) ** 2 / e + (o - e) ** 2 / (1 - e) for o, e in zip(y5, p5))
    assert result.statistic == pytest.approx(expected, abs=1e-12)


def test_calibration_curve_points(mtcars_fit):
    y, p, _ = mtcars_fit
    points = calibration.calibration_curve(y, p, groups=4)
    assert sum(pt.n for pt in points) == 32
    assert all(pt.ci[0] <= pt.observed_rate <= pt.ci[1] for pt in points)
    assert np.all(np.diff([pt.mean_predicted for pt in points]) > 0)


@pytest.mark.parametrize(("y", "p", "groups", "message"), [
    ([0, 1, 0, 1], [0.1, 1.2, 0.3, 0.4], 10, r"\[0, 1\]"),
    ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 10, "identical"),
    ([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], 1, ">= 2"),
    ([0, 1, 0, 1], [0.1, np.nan, 0.3, 0.4], 10, "missing"),
])
def test_bad_input(y, p, groups, message):
    with pytest.raises(InputError, match=message):
        calibration.hosmer_lemeshow(y, p, groups)
