"""The realism measurement (synth.realism): the classifier two-sample test must be able to fail
and to pass, the normalisation must remove a scanner's intensity scale, and the tissue contrasts
of synthetic cases and of the real refdata study must be what MR physics says.
The full benchmark (full-size cohorts, both generator versions) is Testing/benchmarks/bench_realism.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from CervicalAILib.research.synth import SynthParams, generate_cohort
from CervicalAILib.research.synth.realism import (
    FEATURE_NAMES,
    real_contrasts,
    real_t2_volumes,
    synthetic_contrasts,
    synthetic_t2_volumes,
    two_sample_test,
    volume_patches,
)

ROIS = Path(__file__).resolve().parents[3] / "benchmarks" / "realism_rois.json"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("realism") / "cohort"
    generate_cohort(out, 4, seed=21, centers=4, params=SynthParams(matrix_scale=0.35))
    return sorted(p for p in out.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def volumes(cohort):
    return [synthetic_t2_volumes(case) for case in cohort]


def test_patch_features_ignore_the_intensity_scale(volumes):
    volume = volumes[0][0]
    a, _ = volume_patches(volume, np.random.default_rng(0), 30)
    b, _ = volume_patches(replace(volume, array=volume.array * 3.7), np.random.default_rng(0), 30)
    assert a.shape == (30, len(FEATURE_NAMES)) and np.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_two_sample_test_tells_apart_what_differs_and_not_what_does_not(volumes):
    first = [v for case in volumes[:2] for v in case]
    second = [v for case in volumes[2:] for v in case]
    kwargs = {"seed": 1, "max_real_patches": 40, "max_synthetic_patches": 40, "n_trees": 100}
    same = two_sample_test(first, second, **kwargs)  # two "studies" per side: whole volumes left out by orientation
    assert same.design == "orientation" and len(same.fold_aucs) == 2
    assert same.auc < 0.8  # two sets of cases of one generator: not told apart
    # the same second set, blurred (as a generator without fine texture or noise would be)
    blurred = [replace(v, array=ndimage.gaussian_filter(v.array, (0, 2.0, 2.0))) for v in second]
    different = two_sample_test(first, blurred, **kwargs)
    assert different.auc > 0.95 and different.auc > same.auc + 0.2


def test_synthetic_tissue_contrasts_follow_the_physics(cohort):
    for case in cohort:
        contrasts = synthetic_contrasts(case)
        if contrasts["t2_fat_suppressed"]:
            assert contrasts["t2_fat_muscle"] < 3  # fat saturation
        else:
            assert 4 < contrasts["t2_fat_muscle"] < 16
            assert 4 < contrasts["t2_marrow_muscle"] < 16  # fatty marrow of the femoral head
        assert 6 < contrasts["t2_urine_muscle"] < 25
        assert 2300 < contrasts["adc_urine"] < 3400 and 1000 < contrasts["adc_muscle"] < 1900
        assert contrasts["adc_fat"] < 400  # suppressed fat: blanked or noise


def test_real_study_series_regions_and_contrasts(refdata):
    study = refdata("mri", "ProstateX-0000_dicom")
    rois = json.loads(ROIS.read_text())[study.name]
    volumes = real_t2_volumes(study, rois)
    assert sorted(v.orientation for v in volumes) == ["oblique-axial", "sagittal"]  # the coronal is not generated
    for volume in volumes:
        assert 0 < volume.exclude.mean() < 0.2  # the prostate and seminal vesicles are left out
        assert not volume.fat_suppressed
    table = real_contrasts(study, rois)
    assert 7 < table["t2_fat_muscle"][0] <= table["t2_fat_muscle"][1] < 15
    assert 9 < table["t2_urine_muscle"][0] and table["t2_urine_muscle"][1] < 14
    assert 2800 < table["adc_urine"][0] and table["adc_urine"][1] < 2950
    assert 1100 < table["adc_muscle"][0] and table["adc_muscle"][1] < 1600
