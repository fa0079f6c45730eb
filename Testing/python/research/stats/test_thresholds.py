"""Youden cut-offs, diagnostic metrics and Wilson intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.stats import thresholds
from conftest import refdata_path


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (26, 41), (58, 72), (10, 10), (3, 7), (500, 1000)])
def test_wilson_equals_statsmodels(k, n):
    ours = thresholds.wilson_ci(k, n)
    ref = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert ours == pytest.approx(ref, abs=1e-12)
    assert thresholds.wilson_ci(k, n, level=0.9) == pytest.approx(proportion_confint(k, n, 0.1, "wilson"), abs=1e-12)


def test_wilson_of_nothing_is_undefined_and_bad_counts_refused():
    assert all(np.isnan(thresholds.wilson_ci(0, 0)))
    with pytest.raises(InputError):
        thresholds.wilson_ci(5, 3)


def test_youden_cutoff_on_asah_equals_proc_best():
    data = pd.read_csv(refdata_path("statistics", "aSAH.csv"))
    y = (data["outcome"] == "Poor").to_numpy()
    best = thresholds.youden_cutoff(y, data["s100b"])
    # pROC coords(r.s100b, "best", best.method = "youden")
    assert best.cutoff == pytest.approx(0.205, abs=1e-12)
    assert best.sensitivity == pytest.approx(26 / 41) and best.specificity == pytest.approx(58 / 72)
    metrics = thresholds.metrics_at_cutoff(y, data["s100b"], best.cutoff)
    assert (metrics.tp, metrics.fn, metrics.tn, metrics.fp) == (26, 15, 58, 14)
    assert metrics.ppv.value == pytest.approx(26 / 40)
    assert metrics.npv.value == pytest.approx(58 / 73)
    assert metrics.accuracy.value == pytest.approx(84 / 113)


def test_youden_tie_goes_to_higher_sensitivity():
    # cut 1.5 -> se 1, sp 0.5 (J 0.5); cut 2.5 -> J 0; cut 3.5 -> se 0.5, sp 1 (J 0.5): keep 1.5
    y = np.array([0, 1, 0, 1])
    score = np.array([1.0, 2.0, 3.0, 4.0])
    best = thresholds.youden_cutoff(y, score)
    assert best.youden == pytest.approx(0.5)
    assert best.cutoff == 1.5 and best.sensitivity == 1.0
    lower = thresholds.youden_cutoff(1 - y, score, direction="lower")
    assert lower.direction == "lower" and lower.sensitivity == 1.0 and lower.cutoff == 3.5


def test_cutoff_is_carried_unchanged_to_other_data():
    rng = np.random.default_rng(3)
    y_train = rng.random(300) < 0.3
    s_train = rng.normal(size=300) + y_train
    cut = thresholds.youden_cutoff(y_train, s_train).cutoff
    y_val = np.array([1, 1, 0, 0, 1])
    s_val = np.array([cut, cut + 1, cut - 1e-9, cut - 2, cut - 0.5])
    m = thresholds.metrics_at_cutoff(y_val, s_val, cut)
    # score >= cut-off is positive: the patient exactly at the cut-off is a true positive
    assert (m.tp, m.fn, m.tn, m.fp) == (2, 1, 2, 0)
    d = m.as_dict()
    assert d["sensitivity"] == pytest.approx(2 / 3) and d["specificity"] == 1.0
    assert d["sensitivity_ci"] == pytest.approx(list(proportion_confint(2, 3, method="wilson")))


def test_undefined_proportions_are_none():
    m = thresholds.diagnostic_metrics([1, 0, 1], [0, 0, 0])  # nobody called positive
    d = m.as_dict()
    assert d["ppv"] is None and d["ppv_ci"] is None
    assert d["npv"] == pytest.approx(1 / 3)


def test_predict_positive_refuses_infinite_cutoff():
    with pytest.raises(InputError, match="finite"):
        thresholds.predict_positive([0.1, 0.2], float("inf"))
