"""Learning ComBat (neuroHarmonize): what it refuses, and what it hands to the serving `ComBat`.

(Applying the parameters is tested in scoring/test_combat.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.fit.harmonise import fit_combat


def _two_centres(n=60, p=4, seed=3):
    rng = np.random.default_rng(seed)
    site = np.array(["A"] * (n // 2) + ["B"] * (n - n // 2), dtype=object)
    x = rng.normal(size=(n, p)) * 3 + 20 + np.where(site == "B", 5.0, 0.0)[:, None]
    return x, site, [f"T2W_original_firstorder_F{i}" for i in range(p)]


def test_fit_refuses_one_centre_and_tiny_centres():
    x, site, names = _two_centres()
    with pytest.raises(InputError, match="at least two training centres"):
        fit_combat(x, ["A"] * len(x), names)
    tiny = np.array(["A"] * (len(x) - 2) + ["B", "B"], dtype=object)
    with pytest.raises(InputError, match=r"too few in: B \(2\)"):
        fit_combat(x, tiny, names)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        fit_combat(bad, site, names)
    with pytest.raises(InputError, match="covariate 'age'"):
        fit_combat(x, site, names, {"age": np.full(len(x) - 1, 50.0)})


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_learned_parameters_describe_the_training_cohort():
    x, site, names = _two_centres()
    age = np.random.default_rng(4).uniform(30, 70, len(x))  # independent of the centre
    combat, harmonised = fit_combat(x, site, names, {"age": age})
    assert combat.feature_names_ == names and combat.centers_ == ["A", "B"] and combat.covariates_ == ["age"]
    assert combat.cases_per_center_ == {"A": 30, "B": 30}
    assert combat.gamma_.shape == combat.delta_.shape == (2, len(names)) and combat.beta_.shape == (1, len(names))
    # equal centre sizes: the pooled reference is the plain mean of the two centres' adjustments
    np.testing.assert_allclose(combat.pooled_gamma_, combat.gamma_.mean(axis=0), rtol=1e-12)
    # the harmonised training matrix is what the parameters give when applied to it
    again, modes = combat.transform(x, list(site), {"age": age})
    assert set(modes) == {"centre"}
    np.testing.assert_allclose(again, harmonised, rtol=0, atol=1e-9)
    # and the centre shift of 5 is gone
    assert abs(harmonised[site == "B"].mean() - harmonised[site == "A"].mean()) < 0.5
