"""Seed 004's selection chain: each step against a direct computation, and the chain on known signal."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from CervicalAILib.research.fit.logistic import backward_stepwise_aic, fit_logit
from CervicalAILib.research.fit.selection import (
    SelectionConfig,
    lasso_cv,
    mann_whitney_p,
    remove_redundant,
    select_family,
    standardise,
)
from CervicalAILib.research.fit.simulate import simulate_feature_table


@pytest.fixture(scope="module")
def simulated():
    # one centre, no scanner effects: the chain alone is under test
    return simulate_feature_table(500, seed=11, centers=("A",), deep_families={"dl-resnet2d": 1.0}, batch_effects=False)


def _family(sim, family):
    names = sim.signal[family] + sim.duplicates[family] + sim.noise[family]
    return sim.frame[names].to_numpy(float), names, sim.frame["lnm"].to_numpy()


def test_mann_whitney_equals_scipy_per_column(simulated):
    x, names, y = _family(simulated, "radiomics")
    p = mann_whitney_p(x, y)
    for j in (0, 3, 7):
        expected = stats.mannwhitneyu(x[y == 1, j], x[y == 0, j], alternative="two-sided").pvalue
        assert p[j] == pytest.approx(expected, rel=1e-12)


def test_spearman_keeps_smaller_p_and_ignores_column_order():
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    x = np.column_stack([a, a + 0.01 * rng.normal(size=200), rng.normal(size=200), -a + 0.02 * rng.normal(size=200)])
    names = ["f_a", "f_copy", "f_other", "f_negative_copy"]
    p = [0.004, 0.001, 0.002, 0.003]  # the copy has the smallest p: it must be the survivor of the trio
    kept, log = remove_redundant(x, names, p, 0.8)
    assert sorted(names[i] for i in kept) == ["f_copy", "f_other"]
    assert {entry["removed"] for entry in log} == {"f_a", "f_negative_copy"}
    assert all(entry["kept"] == "f_copy" and abs(entry["rho"]) > 0.8 for entry in log)
    order = [2, 3, 0, 1]
    kept2, _ = remove_redundant(x[:, order], [names[i] for i in order], [p[i] for i in order], 0.8)
    assert sorted(names[order[i]] for i in kept2) == ["f_copy", "f_other"]


def test_lasso_cv_against_direct_sklearn(simulated):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x, names, y = _family(simulated, "radiomics")
    z, _, _ = standardise(x[:, :12])
    config = SelectionConfig(lasso_n_c=12, lasso_folds=5)
    result = lasso_cv(z, y, config)
    best = result["grid"].index(result["C"])
    assert best == int(np.argmin(result["mean_deviance"]))
    # the smallest C of the grid is where the first coefficient leaves zero
    assert result["grid"][0] == pytest.approx(1 / np.max(np.abs(z.T @ (y - y.mean()))), rel=1e-12)
    # held-out deviance at the chosen C, recomputed with scikit-learn's own CV scoring
    model = LogisticRegression(l1_ratio=1.0, C=result["C"], solver="liblinear", intercept_scaling=100.0, tol=1e-6,
                               max_iter=10000, random_state=config.seed)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=config.seed)
    neg_log_loss = cross_val_score(model, z, y, cv=folds, scoring="neg_log_loss")
    assert result["mean_deviance"][best] == pytest.approx(-2 * neg_log_loss.mean(), rel=1e-9)
    direct = model.fit(z, y).coef_[0]
    np.testing.assert_allclose(result["coefficients"], direct, rtol=0, atol=1e-12)
    assert sum(c != 0 for c in result["coefficients"]) >= 1
    # below the grid's smallest C every coefficient is zero, above it one leaves zero
    below = LogisticRegression(l1_ratio=1.0, C=0.8 * result["grid"][0], solver="liblinear", intercept_scaling=100.0,
                               tol=1e-8, max_iter=10000, random_state=0).fit(z, y)
    above = LogisticRegression(l1_ratio=1.0, C=2.0 * result["grid"][0], solver="liblinear", intercept_scaling=100.0,
                               tol=1e-8, max_iter=10000, random_state=0).fit(z, y)
    assert np.count_nonzero(below.coef_) == 0 and np.count_nonzero(above.coef_) >= 1


def test_stepwise_aic_against_statsmodels():
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    n = 300
    x = rng.normal(size=(n, 5))
    lp = -0.5 + 1.2 * x[:, 0] - 0.8 * x[:, 2]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-lp))).astype(int)
    names = [f"x{i}" for i in range(5)]
    result = backward_stepwise_aic(x, y, names)
    assert "x0" in result.terms and "x2" in result.terms
    # final coefficients are the plain maximum-likelihood fit of the kept columns
    cols = [names.index(t) for t in result.terms]
    direct = sm.Logit(y, sm.add_constant(x[:, cols])).fit(disp=0)
    np.testing.assert_allclose([result.fit.intercept] + result.fit.coefficients, direct.params, rtol=1e-8)
    assert result.fit.aic == pytest.approx(direct.aic, rel=1e-10)
    # stopping rule: dropping any remaining term would not lower the AIC
    for term in result.terms:
        rest = [names.index(t) for t in result.terms if t != term]
        aic = sm.Logit(y, sm.add_constant(x[:, rest]) if rest else np.ones((n, 1))).fit(disp=0).aic
        assert aic >= result.fit.aic
    # each logged step dropped a term and lowered the AIC, with the AICs statsmodels gives
    current = list(names)
    for step in result.steps:
        cols = [names.index(t) for t in current]
        assert step["aic_before"] == pytest.approx(sm.Logit(y, sm.add_constant(x[:, cols])).fit(disp=0).aic, rel=1e-10)
        current.remove(step["drop"])
        assert step["aic_after"] < step["aic_before"]
    assert current == result.terms


def test_stepwise_treats_categorical_terms_as_one():
    rng = np.random.default_rng(5)
    n = 400
    level = rng.choice(3, size=n)
    dummies = np.column_stack([level == 1, level == 2]).astype(float)
    signal = rng.normal(size=n)
    lp = -0.3 + 1.0 * signal + np.where(level == 2, 1.0, 0.0)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-lp))).astype(int)
    design = np.column_stack([signal, dummies])
    result = backward_stepwise_aic(design, y, ["s", "h=B", "h=C"], {"s": ["s"], "h": ["h=B", "h=C"]})
    assert result.terms == ["s", "h"]
    assert result.fit.columns == ["s", "h=B", "h=C"]


def test_non_converging_fit_is_never_accepted():
    x = np.linspace(-1, 1, 60).reshape(-1, 1)
    y = (x[:, 0] > 0).astype(int)  # perfectly separated
    fit = fit_logit(x, y, ["x"])
    assert not fit.converged and math.isinf(fit.aic)
    result = backward_stepwise_aic(x, y, ["x"])
    assert result.terms == []  # the intercept-only model is the only one that converges


def test_chain_keeps_signal_and_drops_noise_and_duplicates(simulated):
    config = SelectionConfig(lasso_folds=5, lasso_n_c=20)
    x, names, y = _family(simulated, "radiomics")
    model = select_family("radiomics", x, names, y, config)
    signal, duplicates = simulated.signal["radiomics"], simulated.duplicates["radiomics"]
    pairs = [{s, d} for s, d in zip(signal, duplicates)]
    # one feature of each signal/duplicate pair survives, never both, and no noise feature
    for pair in pairs:
        assert len(pair & set(model.features)) == 1
    assert set(model.features) <= set(signal) | set(duplicates)
    # Spearman removed the partner of each survivor
    removed = {entry["removed"] for entry in model.log["spearman"]["removed"]}
    assert all(len(pair & removed) == 1 for pair in pairs)
    # the score is the final model's linear predictor
    cols = [names.index(f) for f in model.features]
    score = model.model
    assert score.family_ == "radiomics" and score.features_ == model.features
    z = (x[:, cols] - np.mean(x[:, cols], axis=0)) / np.std(x[:, cols], axis=0)  # standardised on this cohort
    np.testing.assert_allclose(score.decision_function(x[:, cols]), score.intercept_ + z @ score.coef_, rtol=1e-12)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, score.decision_function(x[:, cols])) > 0.7

    deep_x, deep_names, _ = _family(simulated, "dl-resnet2d")
    deep = select_family("dl-resnet2d", deep_x, deep_names, y, config)
    assert len(deep.features) == 1 and deep.features[0] in simulated.signal["dl-resnet2d"] + simulated.duplicates["dl-resnet2d"]


def test_chain_without_signal_gives_no_score():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(200, 30))
    y = (rng.uniform(size=200) < 0.3).astype(int)
    model = select_family("radiomics", x, [f"T2W_f{i}" for i in range(30)], y, SelectionConfig(lasso_folds=5, lasso_n_c=10))
    assert not model.available and model.model is None and model.features == []
    assert "stopped" in model.log


def test_separated_classes_keep_the_finite_lasso_model():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    diameter = rng.uniform(10, 70, 300)
    y = (diameter >= 40).astype(int)  # an endpoint that a size feature defines (stage group on synthetic data)
    x = np.column_stack([diameter + rng.normal(0, 0.5, 300), diameter ** 3 / 1000 + rng.normal(0, 5, 300),
                         rng.normal(size=(300, 4))])
    names = ["T2W_shape_Maximum3DDiameter", "T2W_shape_VoxelVolume"] + [f"T2W_noise{i}" for i in range(4)]
    config = SelectionConfig(lasso_folds=5, lasso_n_c=15)
    model = select_family("radiomics", x, names, y, config)
    assert model.available and "separation" in model.log["stepwise"]["skipped"]
    assert all(np.isfinite(model.model.coef_)) and np.isfinite(model.model.intercept_)
    # the score is the LASSO model's decision function at the chosen C
    assert model.features == list(model.log["lasso"]["kept"])
    cols = [names.index(f) for f in model.features]
    kept_all = [names.index(n) for n in model.log["spearman"]["kept"]]
    z, _, _ = standardise(x[:, kept_all])
    lasso = LogisticRegression(l1_ratio=1.0, C=model.log["lasso"]["C"], solver="liblinear",
                               intercept_scaling=config.intercept_scaling, tol=config.lasso_tol, max_iter=10000,
                               random_state=config.seed)
    lasso.fit(z, y)
    np.testing.assert_allclose(model.model.decision_function(x[:, cols]), lasso.decision_function(z), rtol=1e-6, atol=1e-6)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, model.model.decision_function(x[:, cols])) > 0.99
