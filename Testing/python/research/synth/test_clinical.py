"""Synthetic cohort statistics from the image-free cohort table (calibration to seed 004)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2_contingency
from sklearn.metrics import roc_auc_score

from CervicalAILib.core.errors import InputError
from CervicalAILib.research.synth import SynthParams, sample_cohort_table
from CervicalAILib.research.synth.clinical import sample_patient
from CervicalAILib.research.synth.params import stage_group
from CervicalAILib.scoring.staging import SURGERY_STAGES

N = 2000


@pytest.fixture(scope="module")
def table():
    return sample_cohort_table(N, seed=2026, centers=5)


def test_lnm_prevalence_matches_seed_004(table):
    # seed 004: 149/481, 63/204, 127/410 LNM-positive (about 31 %)
    assert 0.27 <= table["lnm"].mean() <= 0.35


def test_c_lnm_is_specific_but_insensitive(table):
    lnm, c = table["lnm"] == 1, table["c_lnm"] == 1
    sensitivity, false_positive = c[lnm].mean(), c[~lnm].mean()
    # seed 004 Table 1: c_LNM in 26.8/23.8/29.1 % of LNM+ and 2.4/3.5/2.8 % of LNM-
    assert 0.21 <= sensitivity <= 0.33
    assert 0.012 <= false_positive <= 0.04
    expected_sens, expected_fpr = SynthParams().outcome.c_lnm_rates()
    assert abs(sensitivity - expected_sens) < 0.05 and abs(false_positive - expected_fpr) < 0.012


def test_c_lnm_and_sra_follow_their_rules(table):
    short, long_axis = table["ln_short_axis_mm"], table["ln_long_axis_mm"]
    assert np.array_equal(table["c_lnm"] == 1, short >= 10.0)
    rule = (short >= 10.0) | (table["ln_necrosis"] == 1) | ((short >= 8.0) & (short / long_axis > 0.8))
    assert np.array_equal(table["sra"] == 1, rule)
    assert short.min() >= 3.0 and short.max() <= 20.0 and np.all(long_axis >= short)
    lnm = table["lnm"] == 1
    sra = table["sra"] == 1
    # SRA (three rules) is more sensitive than c_LNM and still specific (seed 004: 33-38 %, 95-97 %)
    assert table["c_lnm"][lnm].mean() < sra[lnm].mean() <= 0.45
    assert 0.93 <= 1 - sra[~lnm].mean() <= 0.985


def test_oracle_auc_is_in_the_calibrated_range(table):
    auc = roc_auc_score(table["lnm"], table["oracle_lnm_probability"])
    assert 0.80 <= auc <= 0.86
    # the image biology alone is informative but weaker than biology + c_LNM
    auc_biology = roc_auc_score(table["lnm"], table["latent_lnm_linear_predictor"])
    assert 0.72 <= auc_biology < auc
    # c_LNM alone: (sensitivity + specificity) / 2 = about 0.62
    assert 0.57 <= roc_auc_score(table["lnm"], table["c_lnm"]) <= 0.67


def test_oracle_probability_is_calibrated(table):
    p, y = table["oracle_lnm_probability"], table["lnm"]
    assert abs(p.mean() - y.mean()) < 0.03
    order = np.argsort(p)
    for chunk in np.array_split(order, 4):  # quartiles of predicted risk
        assert abs(p[chunk].mean() - y[chunk].mean()) < 0.06


def test_oracle_probability_is_the_stated_formula(table):
    sens, fpr = SynthParams().outcome.c_lnm_rates()
    eta = table["latent_lnm_linear_predictor"]
    log_lr = np.where(table["c_lnm"] == 1, math.log(sens / fpr), math.log((1 - sens) / (1 - fpr)))
    expected = 1 / (1 + np.exp(-(eta + log_lr)))
    assert np.allclose(table["oracle_lnm_probability"], expected, atol=2e-6)


def test_figo_mix_follows_table_1(table):
    mix = SynthParams().stage_mix_early
    stages = table["figo_stage"]
    assert set(stages) == set(mix)
    for stage, share in mix.items():
        assert abs((stages == stage).mean() - share) < 0.035, stage
    # LNM is commoner in large (IB3, IIA2) than in small (IB1) tumours, as in Table 1
    rate = {s: table["lnm"][stages == s].mean() for s in mix}
    assert rate["IB1"] < rate["IB2"] < rate["IB3"]
    assert rate["IIA1"] < rate["IIA2"]


def test_stage_groups_follow_seed_000(table):
    for stage, group, crt in zip(table["figo_stage"], table["stage_group"], table["stage_group_crt"]):
        assert group == ("surgery" if stage in SURGERY_STAGES else "chemoradiotherapy")
        assert crt == (group == "chemoradiotherapy")
    auc = roc_auc_score(table["stage_group_crt"], table["oracle_stage_probability"])
    assert auc > 0.9


def test_tumour_sizes_span_a_few_mm_to_over_6_cm():
    early = sample_cohort_table(N, seed=5)
    d = early["latent_diameter_mm"]
    assert 8 <= np.percentile(d, 2) <= 14
    assert 25 <= np.median(d) <= 36
    assert np.percentile(d, 98) >= 60
    # stage size classes: IB1 <= 2 cm, IB3/IIA2 > 4 cm (allowing clinical mis-staging)
    stages = early["figo_stage"]
    assert np.mean(d[stages == "IB1"] <= 20) > 0.9
    assert np.mean(d[stages == "IB3"] > 40) > 0.85
    full = sample_cohort_table(N, seed=5, params=SynthParams(stage_range="full"))
    assert np.percentile(full["latent_diameter_mm"], 1) < 6  # IA: a few mm


def test_full_stage_range_covers_ia_to_ivb():
    table = sample_cohort_table(N, seed=9, params=SynthParams(stage_range="full"))
    stages = set(table["figo_stage"])
    assert {"IA1", "IA2", "IB1", "IIB", "IIIB", "IIIC1", "IVA", "IVB"} <= stages
    # radiological nodes upstage to IIIC1 (FIGO 2018) unless the tumour is already stage IV
    iiic = table["figo_stage"] == "IIIC1"
    assert np.all(table["c_lnm"][iiic] == 1)
    not_iv = ~np.isin(table["latent_local_stage"], ["IVA", "IVB"])
    assert np.all(iiic[(table["c_lnm"] == 1) & not_iv])
    assert 0.45 <= table["stage_group_crt"].mean() <= 0.7  # seed 000: 58 % / 52 %
    assert table["lnm"].mean() > sample_cohort_table(500, seed=9)["lnm"].mean()


def test_centre_does_not_encode_the_outcome(table):
    centers = table["center"]
    assert set(centers) == {"A", "B", "C", "D", "E"}
    share_a = (centers == "A").mean()
    assert abs(share_a - 685 / 1095) < 0.04
    counts = [[np.sum((centers == c) & (table["lnm"] == k)) for k in (0, 1)] for c in sorted(set(centers))]
    assert chi2_contingency(counts)[1] > 0.01


def test_cases_do_not_depend_on_cohort_size_or_order():
    small = sample_cohort_table(7, seed=11, centers=3)
    large = sample_cohort_table(40, seed=11, centers=3)
    for key in small:
        assert np.array_equal(small[key], large[key][:7]), key
    assert sample_patient(5, 11, SynthParams(), 3).clinical == {
        k: (v.item() if hasattr(v, "item") else v) for k, v in
        {key: large[key][5] for key in sample_patient(5, 11, SynthParams(), 3).clinical}.items()
    }
    other = sample_cohort_table(7, seed=12, centers=3)
    assert not np.array_equal(small["latent_diameter_mm"], other["latent_diameter_mm"])


def test_histology_and_clinical_ranges(table):
    assert set(table["histology"]) == {"SCC", "AC", "ASC"}
    assert 0.7 <= (table["histology"] == "SCC").mean() <= 0.9
    assert 44 <= np.median(table["age"]) <= 60 and table["age"].min() >= 24
    assert np.all(table["scc_ag"] > 0)
    # SCC-Ag tracks tumour burden in squamous tumours
    scc = table["histology"] == "SCC"
    corr = np.corrcoef(np.log(table["latent_diameter_mm"][scc]), np.log(table["scc_ag"][scc]))[0, 1]
    assert corr > 0.3
    assert stage_group("IB2") == "surgery" and stage_group("IIA2") == "chemoradiotherapy"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_cases": 0, "seed": 1},
        {"n_cases": -3, "seed": 1},
        {"n_cases": 5, "seed": -1},
        {"n_cases": 5, "seed": 1, "centers": 0},
        {"n_cases": 5, "seed": 1, "params": SynthParams(stage_range="late")},
        {"n_cases": 5, "seed": 1, "params": SynthParams(size_by_stage={**SynthParams().size_by_stage, "IB2": (-29.0, 0.2)})},
        {"n_cases": 5, "seed": 1, "params": SynthParams(matrix_scale=-0.5)},
        {"n_cases": 5, "seed": 1, "params": SynthParams(motion_translation_sd_mm=-1.0)},
    ],
)
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(InputError):
        sample_cohort_table(**kwargs)
