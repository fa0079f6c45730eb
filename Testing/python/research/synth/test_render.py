"""Rendered synthetic cases (generator 2): image contrast, geometry, labels, determinism (small matrices)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from CervicalAILib.io.case import load_case
from CervicalAILib.io.geometry import resample_to_reference, same_grid
from CervicalAILib.research.synth import ORGAN_GROUPS, ORGAN_LABELS, SynthParams, generate_case, organ_mask
from CervicalAILib.research.synth.params import case_rng
from CervicalAILib.research.synth.scanner import center_profile, motion_transform, series_geometry
from CervicalAILib.research.synth.writer import write_case_folder

SMALL = SynthParams(matrix_scale=0.4)
SEED = 3
N_CASES = 8


@pytest.fixture(scope="module")
def cases():
    return [generate_case(i, SEED, SMALL, n_centers=2) for i in range(N_CASES)]


def arr(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def motion(case, role: str) -> sitk.Euler3DTransform:
    return motion_transform(case.truth["series"][role])


def on_grid(case, label: sitk.Image, role: str) -> np.ndarray:
    """A T2W-grid label resampled onto `role`'s grid through the true patient motion."""
    inverse = motion(case, role).GetInverse()  # maps series points back to T2W points
    return arr(resample_to_reference(label, case.images[role], inverse, sitk.sitkNearestNeighbor))


def test_images_are_scanner_like(cases):
    case = cases[0]
    assert list(case.images) == ["T2W", "ADC", "DWI", "CET1"]
    for role, image in case.images.items():
        assert image.GetPixelID() == sitk.sitkInt16, role
        values = arr(image)
        assert values.min() >= 0 and values.max() <= 4095, role
        assert values.std() > 5 and values.max() > 100, role  # not blank
    for name, image in case.labels.items():
        assert image.GetPixelID() == sitk.sitkUInt8, name


def test_sequences_have_their_own_realistic_grids():
    params = SynthParams()
    for center_index in range(12):
        center = center_profile(center_index, params)
        rng = case_rng(1, center_index, 99)
        t2 = series_geometry(center.t2, rng, np.zeros(3), params, np.zeros(3), moved=False,
                             slice_normal=np.array([0.0, -0.5, 0.87]))
        sag = series_geometry(center.t2_sag, rng, np.zeros(3), params, np.zeros(3), moved=True)
        dwi = series_geometry(center.dwi, rng, np.zeros(3), params, np.zeros(3), moved=True)
        cet1 = series_geometry(center.cet1, rng, np.zeros(3), params, np.zeros(3), moved=True)
        # reconstructed pixels (scanners interpolate) and the acquired matrix behind them
        assert 0.3 <= t2.spacing[0] <= 1.05 and 3.0 <= t2.slice_thickness <= 6.0
        assert 1.0 <= dwi.spacing[0] <= 4.0 and 4.0 <= dwi.slice_thickness <= 6.0
        assert 0.7 <= cet1.spacing[0] <= 1.6 and 2.0 <= cet1.slice_thickness <= 3.0
        for geometry in (t2, sag, dwi, cet1):
            assert all(1 <= a <= n for a, n in zip(geometry.acq_size, geometry.size[:2]))
            assert np.allclose(geometry.direction.T @ geometry.direction, np.eye(3))
            assert np.linalg.det(geometry.direction) == pytest.approx(1.0)
        # oblique axial T2WI: slices perpendicular to the given cervical axis; else true axial
        axis = np.array([0.0, -0.5, 0.87]) / np.linalg.norm([0.0, -0.5, 0.87])
        normal = t2.direction[:, 2]
        assert abs(normal @ (axis if center.t2.orientation == "oblique_axial" else np.array([0, 0, 1.0]))) > 0.999
        assert center.t2.orientation in ("axial", "oblique_axial") and center.t2_sag.orientation == "sagittal"
        assert abs(sag.direction[0, 2]) == pytest.approx(1.0)  # sagittal: slice normal along x
        assert center.b_value in (800.0, 1000.0)
        # rotations of a few degrees, translations of a few mm
        assert np.all(np.abs(dwi.motion_angles_deg) < 8) and np.all(np.abs(dwi.motion_translation) < 10)


def test_geometry_differs_between_sequences_and_adc_shares_the_dwi_grid(cases):
    for case in cases[:3]:
        t2, dwi, adc, cet1 = (case.images[r] for r in ("T2W", "DWI", "ADC", "CET1"))
        assert same_grid(dwi, adc)
        assert not same_grid(t2, dwi) and not same_grid(t2, cet1) and not same_grid(dwi, cet1)
        assert t2.GetSpacing()[2] != cet1.GetSpacing()[2] or t2.GetSize() != cet1.GetSize()
        assert not np.allclose(t2.GetOrigin(), dwi.GetOrigin())
        for role in ("DWI", "CET1"):
            m = case.truth["series"][role]["motion_from_t2"]
            assert np.abs(m["translation_mm"]).max() > 0 and np.abs(m["rotation_deg_xyz"]).max() > 0
        assert case.truth["series"]["T2W"]["motion_from_t2"]["translation_mm"] == [0.0, 0.0, 0.0]


def test_tumour_labels_agree_across_grids_through_the_true_motion(cases):
    dices_true, dices_none = [], []
    for case in cases:
        t2_label = arr(case.labels["tumor"]) > 0
        if t2_label.sum() < 150:
            continue
        for role in ("CET1", "DWI"):
            moving = case.labels[f"tumor_{role}"]
            aligned = arr(resample_to_reference(moving, case.labels["tumor"], motion(case, role), sitk.sitkNearestNeighbor))
            plain = arr(resample_to_reference(moving, case.labels["tumor"], None, sitk.sitkNearestNeighbor))
            dice = lambda a, b: 2 * np.sum(a & b) / (a.sum() + b.sum())  # noqa: E731
            dices_true.append(dice(aligned > 0, t2_label))
            dices_none.append(dice(plain > 0, t2_label))
    assert len(dices_true) >= 4
    assert np.median(dices_true) > 0.7
    assert np.mean(dices_true) > np.mean(dices_none)  # the recorded motion is the real one


IN_PLANE = np.zeros((3, 3, 3), bool)
IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def tumour_core_adc(case) -> tuple[float, float] | None:
    """Median ADC of the tumour core (no edge, no necrosis) and of the non-tumour cervix."""
    adc = arr(case.images["ADC"])
    tumour = arr(case.labels["tumor_ADC"]) > 0
    necrosis = on_grid(case, case.labels["tumor_necrosis"], "ADC") > 0
    core = ndimage.binary_erosion(tumour, IN_PLANE) & ~ndimage.binary_dilation(necrosis, iterations=2)
    organs = on_grid(case, case.labels["organs"], "ADC")
    stroma = (organs == ORGAN_LABELS["cervix_stroma"]) & ~ndimage.binary_dilation(tumour, IN_PLANE)
    if core.sum() < 8 or stroma.sum() < 5:
        return None
    return float(np.median(adc[core])), float(np.median(adc[stroma]))


def test_adc_tumour_low_and_stroma_high(cases):
    measured = [m for m in map(tumour_core_adc, cases) if m is not None]
    assert len(measured) >= 2
    for tumour_adc, stroma_adc in measured:
        assert 550 <= tumour_adc <= 1250  # 0.55-1.25e-3 mm2/s
        assert 1250 <= stroma_adc <= 2200  # 1.25-2.2e-3 mm2/s
        assert stroma_adc > tumour_adc + 300


def test_adc_follows_the_latent_cellularity():
    # the same patient rendered with three latent tumour ADCs: the image ADC follows
    values = []
    for latent_adc in (700.0, 900.0, 1100.0):
        case = generate_case(1, SEED, SMALL, latent_overrides={"latent_adc": latent_adc})
        values.append(tumour_core_adc(case)[0])
    assert values[0] < values[1] < values[2]
    assert values[2] - values[0] > 250


def test_t2_dwi_and_cet1_contrast(cases):
    for case in cases:
        organs = arr(case.labels["organs"])
        tumour = arr(case.labels["tumor"]) > 0
        if tumour.sum() < 100:
            continue
        t2 = arr(case.images["T2W"])
        stroma = organs == ORGAN_LABELS["cervix_stroma"]
        assert np.median(t2[ndimage.binary_erosion(tumour, IN_PLANE)]) > 1.5 * np.median(t2[stroma])  # low-signal stroma
        dwi = arr(case.images["DWI"])
        tumour_dwi = ndimage.binary_erosion(arr(case.labels["tumor_DWI"]) > 0, IN_PLANE)
        on_dwi = on_grid(case, case.labels["organs"], "DWI")
        muscle = ndimage.binary_erosion(organ_mask(on_dwi, "muscle"), IN_PLANE, iterations=2)
        if tumour_dwi.sum() >= 5:
            assert np.median(dwi[tumour_dwi]) > 2.0 * np.median(dwi[muscle])
        urine = ndimage.binary_erosion(on_dwi == ORGAN_LABELS["urine"], IN_PLANE, iterations=2)
        if urine.sum() >= 10:
            assert np.median(arr(case.images["ADC"])[urine]) > 2300
        cet1 = arr(case.images["CET1"])
        fat = ndimage.binary_erosion(organ_mask(on_grid(case, case.labels["organs"], "CET1"), "fat"), IN_PLANE)
        assert np.median(cet1[arr(case.labels["tumor_CET1"]) > 0]) > 3 * np.median(cet1[fat])


def test_texture_follows_latent_heterogeneity():
    # same patient rendered with low and high heterogeneity: more texture inside the tumour
    from CervicalAILib.research.synth.render import generate_case as render_case

    base = render_case(1, SEED, SMALL)
    tumour = ndimage.binary_erosion(arr(base.labels["tumor"]) > 0) & ~(arr(base.labels["tumor_necrosis"]) > 0)
    assert tumour.sum() > 100
    cv = []
    for value in (0.05, 0.35):
        case = render_case(1, SEED, SMALL, latent_overrides={"latent_heterogeneity": value})
        t2 = arr(case.images["T2W"])[tumour].astype(float)
        cv.append(t2.std() / t2.mean())
    assert cv[1] > 1.5 * cv[0]


def test_organ_labels_partition_the_body_and_match_the_tumour_label(cases):
    case = cases[1]
    organs = arr(case.labels["organs"])
    present = set(np.unique(organs)) - {0}
    assert present <= set(ORGAN_LABELS.values())
    for group in ("fat", "muscle", "bone", "femoral_head", "bladder", "cervix", "rectum", "vagina", "tumor", "vessel"):
        assert present & set(ORGAN_GROUPS[group]), group
    assert np.array_equal(organs == ORGAN_LABELS["tumor"], arr(case.labels["tumor"]) > 0)
    # the table written beside the map names every value and group
    table = case.label_table
    assert {int(v) for v in table["labels"]} == set(ORGAN_LABELS.values())
    assert table["groups"]["bladder"] == [ORGAN_LABELS["bladder_wall"], ORGAN_LABELS["urine"]]
    nodes = arr(case.labels["lymph_nodes"])
    assert np.all(organs[nodes > 0] == ORGAN_LABELS["lymph_node"])
    ids = {n["id"] for n in case.truth["lymph_nodes"]}
    assert set(np.unique(nodes)) - {0} <= ids and len(ids) >= 4
    largest = [n for n in case.truth["lymph_nodes"] if n["largest"]]
    assert len(largest) == 1 and largest[0]["short_axis_mm"] == case.clinical["ln_short_axis_mm"]


def test_generation_is_deterministic_to_the_byte(tmp_path, cases):
    again = generate_case(2, SEED, SMALL, n_centers=2)
    for role in again.images:
        assert np.array_equal(arr(again.images[role]), arr(cases[2].images[role]))
    assert again.clinical == cases[2].clinical
    a = write_case_folder(again, tmp_path / "a" / again.case_id)
    b = write_case_folder(cases[2], tmp_path / "b" / again.case_id)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 15  # 4 images + sagittal T2W, 7 labels + organs.json, clinical.json, generator_truth.json
    for rel in files:
        assert hashlib.sha256((a / rel).read_bytes()).hexdigest() == hashlib.sha256((b / rel).read_bytes()).hexdigest(), rel
    other = generate_case(2, SEED + 1, SMALL, n_centers=2)
    assert not np.array_equal(arr(other.images["T2W"])[:5], arr(again.images["T2W"])[:5]) or other.clinical != again.clinical


def test_case_folder_follows_the_io_case_contract(tmp_path, cases):
    folder = write_case_folder(cases[0], tmp_path / cases[0].case_id)
    case = load_case(folder)
    assert case.roles == ["T2W", "ADC", "DWI", "CET1"]
    assert {"tumor", "tumor_ADC", "tumor_DWI", "tumor_CET1", "organs", "lymph_nodes"} <= set(case.label_paths)
    assert case.clinical["case_id"] == cases[0].case_id
    assert "oracle_lnm_probability" not in case.clinical and not any(k.startswith("latent_") for k in case.clinical)
    assert same_grid(case.label("tumor"), case.image("T2W"))
    assert same_grid(case.label("tumor_CET1"), case.image("CET1"))
