"""Clinical variables: kinds, seed 004's univariate tests (against scipy), coding and value checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from CervicalAILib.research.fit.clinical import infer_variable, univariate_test


def test_kinds_and_coding():
    assert infer_variable("c_lnm", [0, 1, 1, None]).kind == "binary"
    assert infer_variable("menopause", ["yes", "no", "Yes"]).kind == "binary"
    assert infer_variable("age", [40.0, 51.0, 63.0]).kind == "continuous"
    histology = infer_variable("histology", ["SCC", "AC", "SCC", "ASC", "SCC", None])
    assert histology.kind == "categorical"
    assert histology.reference == "SCC" and histology.levels == ["AC", "ASC", "SCC"]
    assert histology.columns == ["histology=AC", "histology=ASC"]
    coded = histology.encode(["AC", "SCC", "unknown", None])
    np.testing.assert_array_equal(coded[:2], [[1, 0], [0, 0]])
    assert np.isnan(coded[2:]).all()


def test_chi_square_without_correction_when_expected_counts_are_large():
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=400) < 0.3).astype(int)
    x = (rng.uniform(size=400) < np.where(y == 1, 0.5, 0.3)).astype(int)
    result = univariate_test(infer_variable("c_lnm", x), x, y)
    table = np.array([[np.sum((x == v) & (y == 0)), np.sum((x == v) & (y == 1))] for v in (0, 1)])
    assert result.test == "Pearson chi-square"
    assert result.p == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-12)


def test_fisher_when_an_expected_count_is_below_five():
    y = np.array([1] * 20 + [0] * 60)
    x = np.array([1] * 6 + [0] * 14 + [1] * 2 + [0] * 58)  # c_LNM: 8 positives in all -> expected 2 < 5
    result = univariate_test(infer_variable("c_lnm", x), x, y)
    assert result.test == "Fisher exact"
    assert result.p == pytest.approx(stats.fisher_exact([[58, 14], [2, 6]]).pvalue, rel=1e-12)
    # a 3-level table with a sparse cell: Fisher-Freeman-Halton by Monte Carlo, reproducible
    histology = np.array(["SCC"] * 50 + ["AC"] * 25 + ["ASC"] * 5)
    first = univariate_test(infer_variable("histology", histology), histology, y)
    second = univariate_test(infer_variable("histology", histology), histology, y)
    assert first.test.startswith("Fisher-Freeman-Halton") and first.p == second.p
    assert 0.0 < first.p <= 1.0


def test_continuous_uses_welch_or_mann_whitney_by_normality():
    rng = np.random.default_rng(1)
    y = np.array([1] * 60 + [0] * 140)
    normal = np.concatenate([rng.normal(55, 8, 60), rng.normal(52, 8, 140)])
    result = univariate_test(infer_variable("age", normal), normal, y)
    assert result.test == "Welch t-test"
    assert result.p == pytest.approx(stats.ttest_ind(normal[:60], normal[60:], equal_var=False).pvalue, rel=1e-12)
    skewed = np.exp(rng.normal(0, 1.2, 200)) + y * 0.8
    result = univariate_test(infer_variable("scc_ag", skewed), skewed, y)
    assert result.test == "Mann-Whitney U"
    assert result.p == pytest.approx(stats.mannwhitneyu(skewed[:60], skewed[60:]).pvalue, rel=1e-12)
    with_missing = normal.copy()
    with_missing[:5] = np.nan
    assert univariate_test(infer_variable("age", with_missing), with_missing, y).missing == 5
