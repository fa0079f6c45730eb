"""Decision-curve net benefit against the dcurves package (MSKCC) on its df_binary example data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.stats import decision_curve
from conftest import refdata_path


@pytest.fixture(scope="module")
def df_binary():
    return pd.read_csv(refdata_path("statistics", "df_binary.csv"))


def test_readme_figures(df_binary):
    y = df_binary["cancer"].to_numpy()
    t = [0.25]
    assert decision_curve.treat_all_net_benefit(y, t)[0] == pytest.approx(-0.1466667, abs=1e-7)
    assert decision_curve.net_benefit(y, df_binary["cancerpredmarker"], t)[0] == pytest.approx(0.0640000, abs=1e-7)


def test_net_benefit_equals_dcurves_over_a_grid(df_binary):
    from dcurves import dca

    grid = np.arange(0.0, 1.0, 0.01)  # dcurves' default grid
    ref = dca(data=df_binary, outcome="cancer", modelnames=["cancerpredmarker", "famhistory"], thresholds=grid)
    ours = pd.DataFrame(decision_curve.decision_curves(
        df_binary["cancer"].to_numpy(),
        {"cancerpredmarker": df_binary["cancerpredmarker"].to_numpy(), "famhistory": df_binary["famhistory"].to_numpy()},
        grid))
    assert set(ours["model"]) == {"cancerpredmarker", "famhistory", "all", "none"}
    for model in ("cancerpredmarker", "famhistory", "all", "none"):
        expected = ref.loc[ref["model"] == model].sort_values("threshold")["net_benefit"].to_numpy()
        got = ours.loc[ours["model"] == model].sort_values("threshold")["net_benefit"].to_numpy()
        assert got.size == expected.size == 100
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_zero_risk_is_never_treated():
    # dcurves' rule: a predicted risk of exactly 0 is not treated even at threshold 0
    y = np.array([1, 0, 0, 1])
    p = np.array([0.0, 0.0, 0.5, 0.9])
    nb = decision_curve.net_benefit(y, p, [0.0])
    assert nb[0] == pytest.approx(1 / 4)  # TP = 1 (the 0.9), FP weight 0 at t = 0


def test_threshold_range_parsing():
    t = decision_curve.parse_threshold_range("0:0.99:0.01")
    assert t.size == 100 and t[0] == 0.0 and t[-1] == 0.99 and t[30] == 0.3
    assert decision_curve.parse_threshold_range("0.05:0.5:0.05").tolist()[-1] == 0.5
    for bad in ("0:1:0.1", "0.5:0.1:0.1", "0:0.5", "a:b:c", "0:0.5:0", "-0.1:0.5:0.1"):
        with pytest.raises(InputError, match="threshold range"):
            decision_curve.parse_threshold_range(bad)


def test_probabilities_outside_0_1_and_reserved_names_are_refused():
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        decision_curve.net_benefit([0, 1], [0.2, 1.5], [0.1])
    with pytest.raises(InputError, match="reserved"):
        decision_curve.decision_curves([0, 1], {"all": [0.2, 0.4]}, [0.1])
