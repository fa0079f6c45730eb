"""Generator 2's MR physics (signal equations, k-space acquisition) and the frozen 1.x generator."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.research.synth import SynthParams, generate_case, sample_cohort_table
from CervicalAILib.research.synth.acquisition import Artefacts, acquire, shift_along
from CervicalAILib.research.synth.scanner import SeriesGeometry
from CervicalAILib.research.synth.tissues import (
    TISSUES,
    SequenceParameters,
    chemical_shift_pixels,
    fat_signal,
    water_signal,
)


def test_spin_echo_signal_equation():
    muscle = TISSUES["muscle"]
    seq = SequenceParameters("tse", 3.0, te_ms=100.0, tr_ms=5000.0)
    expected = muscle.pd * (1 - math.exp(-5000.0 / muscle.t1_30)) * math.exp(-100.0 / muscle.t2)
    assert water_signal(muscle, seq) == pytest.approx(expected)
    # longer echo time: long-T2 urine keeps its signal, muscle loses it (T2 contrast grows)
    late = SequenceParameters("tse", 3.0, te_ms=130.0, tr_ms=5000.0)
    ratio = lambda s: water_signal(TISSUES["urine"], s) / water_signal(muscle, s)  # noqa: E731
    assert ratio(late) > ratio(seq) > 8
    # fat is bright on a turbo spin echo (long apparent T2) and the chemical shift is ~1-2 pixels at 3 T
    assert fat_signal(seq) / water_signal(muscle, seq) > 5
    assert chemical_shift_pixels(3.0, 200.0) == pytest.approx(3.4 * 42.577478 * 3.0 / 200.0)


def test_diffusion_and_contrast_enhancement():
    epi = SequenceParameters("se_epi", 1.5, te_ms=70.0, tr_ms=5000.0)
    tumour, urine = TISSUES["tumour"], TISSUES["urine"]
    for b in (800.0, 1000.0):
        assert water_signal(tumour, epi, 850.0, b) == pytest.approx(water_signal(tumour, epi) * math.exp(-b * 850e-6))
    # urine: bright at b=0 (long T2), dark at high b (high ADC); restricted tumour stays brighter
    assert water_signal(urine, epi) > water_signal(tumour, epi)
    assert water_signal(urine, epi, None, 1000.0) < water_signal(tumour, epi, 850.0, 1000.0)
    gre = SequenceParameters("gre3d", 3.0, te_ms=2.0, tr_ms=4.5, flip_deg=10.0)
    # gadolinium shortens T1: an enhancing tissue is brighter than the same tissue without contrast
    from dataclasses import replace

    assert water_signal(tumour, gre) > 1.5 * water_signal(replace(tumour, gd=0.0), gre)
    assert water_signal(TISSUES["artery"], gre) > 3 * water_signal(TISSUES["muscle"], gre)


def _geometry(acq=(48, 40)):
    return SeriesGeometry("X", (96, 80, 2), (0.5, 0.5, 3.0), 3.0, np.zeros(3), np.eye(3), np.eye(3), np.zeros(3),
                          np.zeros(3), acq_size=acq, phase_axis=0)


def test_kspace_truncation_gives_gibbs_ringing_and_the_requested_noise():
    geometry = _geometry()
    step = np.zeros((2, 80, 96), np.float32)
    step[:, :, 48:] = 100.0
    image = acquire(step, None, geometry, Artefacts(noise_sigma=1e-6), np.random.default_rng(0))
    profile = image[0, 40]
    assert profile[70:].mean() == pytest.approx(100.0, abs=2.0)
    assert profile.max() > 105.0  # overshoot beside the edge: the truncated k-space's sinc
    assert profile[38:46].max() > 2.0  # and rings on the dark side too (magnitude of the negative lobe)
    # noise: complex Gaussian in the acquired samples -> Rician magnitude; per pixel sd as asked
    flat = acquire(np.full((2, 80, 96), 200.0, np.float32), None, geometry, Artefacts(noise_sigma=5.0),
                   np.random.default_rng(1))
    assert flat.std() == pytest.approx(5.0, rel=0.15)
    background = acquire(np.zeros((2, 80, 96), np.float32), None, geometry, Artefacts(noise_sigma=5.0),
                         np.random.default_rng(2))
    assert background.mean() == pytest.approx(5.0 * math.sqrt(math.pi / 2), rel=0.1)  # Rayleigh mean
    # zero-filling correlates neighbouring pixels (the acquired matrix is 48 x 40 of 96 x 80)
    n = background[0] - background[0].mean()
    assert np.mean(n[:, 1:] * n[:, :-1]) / np.var(n) > 0.3


def test_motion_ghosts_repeat_along_the_phase_direction():
    geometry = _geometry(acq=(96, 80))
    body = np.zeros((2, 80, 96), np.float32)
    body[:, 30:50, 30:66] = 100.0
    moving = np.ones_like(body)
    art = Artefacts(noise_sigma=1e-6, ghost=0.4, ghost_cycles=8.0)
    image = acquire(body, None, geometry, art, np.random.default_rng(0), moving)
    outside_rows = np.r_[0:25, 55:80]  # phase runs along rows here (phase_axis 0)
    outside_cols = np.r_[0:25, 71:96]
    assert image[0][outside_rows][:, 30:66].mean() > 10 * image[0][30:50][:, outside_cols].mean() + 0.5


def test_chemical_shift_moves_fat_along_the_read_out():
    fat = np.zeros((1, 8, 10), np.float32)
    fat[0, :, 4] = 1.0
    moved = shift_along(fat, 1.5, 1)
    assert moved[0, 0, 5] == pytest.approx(0.5) and moved[0, 0, 6] == pytest.approx(0.5) and moved.sum() == 8.0


def test_generator_1x_reproduces_its_cohorts_to_the_byte():
    """Version 1.1.0 is kept (synth/v1): these digests are those of the 1.1.0 generator on main."""
    case = generate_case(2, 3, SynthParams(matrix_scale=0.3, generator_version="1.1.0"), 2)
    digest = lambda image: hashlib.sha256(sitk.GetArrayFromImage(image).tobytes()).hexdigest()[:16]  # noqa: E731
    assert digest(case.images["T2W"]) == "f3da75f14621751f"
    assert digest(case.images["ADC"]) == "2f9c707da950c385"
    assert digest(case.labels["organs"]) == "a144905b3b99e9ac"
    assert case.truth["generator"]["version"] == "1.1.0" and not case.extra_images


def test_both_versions_draw_the_same_patients():
    old = sample_cohort_table(40, seed=5, centers=3, params=SynthParams(generator_version="1.1.0"))
    new = sample_cohort_table(40, seed=5, centers=3)
    for column in ("case_id", "figo_stage", "lnm", "ln_short_axis_mm", "oracle_lnm_probability", "latent_adc"):
        assert np.array_equal(old[column], new[column]), column


def test_unknown_generator_version_is_refused():
    from CervicalAILib.core.errors import InputError

    with pytest.raises(InputError, match="generator version"):
        SynthParams(generator_version="3.0").validate()
    legacy = SynthParams.from_dict({"matrix_scale": 0.5})  # a 1.x generator.json has no version
    assert legacy.generator_version == "1.1.0"
