"""Co-registration onto the T2WI grid: recovery of a known rigid displacement, stored transforms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.contracts.case_folder import Grid, read_manifest
from CervicalAILib.contracts.case_identity import voxels_sha256
from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.io.case import load_case, write_case
from CervicalAILib.io.geometry import index_to_physical_matrix, resample_to_reference, same_grid
from CervicalAILib.registration import (
    RegistrationResult,
    register_rigid,
    register_study_to_case,
    register_to_t2,
    rotation_angle_deg,
)
from conftest import refdata_path

# --- a synthetic "pelvis": analytic structures evaluated at any physical point -----------------

# name, centre (LPS mm), semi-axes (mm). Later structures paint over earlier ones.
STRUCTURES = [
    ("fat", (0.0, 0.0, 0.0), (56.0, 44.0, 60.0)),
    ("muscle", (0.0, 2.0, 0.0), (48.0, 36.0, 60.0)),
    ("femur_r", (-36.0, 6.0, -14.0), (11.0, 11.0, 13.0)),
    ("femur_l", (38.0, 4.0, -12.0), (11.0, 11.0, 13.0)),
    ("bladder", (-3.0, -20.0, 14.0), (17.0, 12.0, 13.0)),
    ("uterus", (2.0, 2.0, 2.0), (14.0, 11.0, 24.0)),
    ("rectum", (-2.0, 25.0, -4.0), (8.0, 7.0, 22.0)),
    ("tumour", (6.0, 5.0, -8.0), (10.0, 8.0, 9.0)),
]
TUMOUR = STRUCTURES[-1]
# relative signal per structure; background (air) is 0
CONTRAST = {
    "T2W": {"fat": 0.85, "muscle": 0.3, "femur_r": 0.7, "femur_l": 0.7, "bladder": 1.0, "uterus": 0.5,
            "rectum": 0.12, "tumour": 0.68},
    "DWI": {"fat": 0.06, "muscle": 0.22, "femur_r": 0.1, "femur_l": 0.1, "bladder": 0.15, "uterus": 0.42,
            "rectum": 0.3, "tumour": 1.0},
    "CET1": {"fat": 0.9, "muscle": 0.35, "femur_r": 0.6, "femur_l": 0.6, "bladder": 0.08, "uterus": 0.75,
             "rectum": 0.4, "tumour": 0.55},
    "ADC": {"fat": 0.08, "muscle": 0.45, "femur_r": 0.18, "femur_l": 0.18, "bladder": 1.0, "uterus": 0.58,
            "rectum": 0.5, "tumour": 0.22},
}


def grid_image(size, spacing, origin, tilt_deg=0.0) -> sitk.Image:
    """Empty grid; `tilt_deg` rotates the slice plane about the L-R axis (an oblique axial)."""
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    t = math.radians(tilt_deg)
    rotation = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
    image.SetDirection(tuple(rotation.ravel()))
    return image


def centred_grid(size, spacing, centre=(0.0, 0.0, 0.0), tilt_deg=0.0) -> sitk.Image:
    image = grid_image(size, spacing, (0.0, 0.0, 0.0), tilt_deg)
    matrix = index_to_physical_matrix(image)
    middle = matrix[:3, :3] @ ((np.asarray(size) - 1) / 2.0)
    image.SetOrigin(tuple(np.asarray(centre) - middle))
    return image


def render(grid: sitk.Image, sequence: str, anatomy_to_image: sitk.Transform | None = None,
           noise: float = 0.03, seed: int = 0, scale: float = 1.0) -> sitk.Image:
    """Render the phantom with `sequence` contrast on `grid`.

    `anatomy_to_image` maps phantom (anatomy) coordinates to where that anatomy appears in this
    image; the image at point y shows the anatomy at its inverse. Edges are smooth (1 mm).
    `scale` enlarges the anatomy (the benchmark fills a clinical field of view with it).
    """
    size = grid.GetSize()
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1).reshape(-1, 3)
    matrix = index_to_physical_matrix(grid)
    points = idx @ matrix[:3, :3].T + matrix[:3, 3]
    if anatomy_to_image is not None:  # rigid: apply the inverse as matrix + offset, vectorised
        inverse = sitk.Euler3DTransform(anatomy_to_image.GetInverse())
        matrix3 = np.asarray(inverse.GetMatrix()).reshape(3, 3)
        centre = np.asarray(inverse.GetCenter())
        points = (points - centre) @ matrix3.T + centre + np.asarray(inverse.GetTranslation())
    points = points / scale
    values = np.zeros(len(points))
    for name, centre, axes in STRUCTURES:
        radius = np.sqrt((((points - centre) / axes) ** 2).sum(axis=1))
        membership = 1.0 / (1.0 + np.exp(np.clip((radius - 1.0) * min(axes) / 1.0, -50, 50)))
        values = values * (1 - membership) + CONTRAST[sequence][name] * membership
    rng = np.random.default_rng(seed)
    values = np.abs(values + rng.normal(0.0, noise, values.shape))  # magnitude images: Rician-like floor
    array = values.reshape(size).transpose(2, 1, 0).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(grid)
    return image


def known_displacement() -> sitk.Euler3DTransform:
    """6 mm translation and a 4 degree rotation about an oblique axis, centred off the tumour."""
    axis = np.array([0.3, 1.0, 0.5])
    axis /= np.linalg.norm(axis)
    versor = sitk.VersorRigid3DTransform()
    versor.SetCenter((10.0, -6.0, 12.0))
    versor.SetRotation(tuple(axis), math.radians(4.0))
    translation = np.array([3.0, -4.0, 3.0])
    versor.SetTranslation(tuple(6.0 * translation / np.linalg.norm(translation)))
    euler = sitk.Euler3DTransform()
    euler.SetCenter(versor.GetCenter())
    euler.SetMatrix(versor.GetMatrix())
    euler.SetTranslation(versor.GetTranslation())
    return euler


def tumour_points(n: int = 200, scale: float = 1.0) -> np.ndarray:
    """Points spread uniformly through the tumour (anatomy coordinates, mm)."""
    _, centre, axes = TUMOUR
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return scale * (np.asarray(centre) + directions * np.asarray(axes) * rng.uniform(0, 1, (n, 1)) ** (1 / 3))


def point_errors(true: sitk.Transform, found: sitk.Transform, points: np.ndarray) -> np.ndarray:
    a = np.array([true.TransformPoint(tuple(p)) for p in points])
    b = np.array([found.TransformPoint(tuple(p)) for p in points])
    return np.linalg.norm(a - b, axis=1)


def make_pair():
    """T2-like image on a fine oblique grid, DWI-like on a coarse axial grid, displaced by a known transform."""
    t2 = render(centred_grid((150, 120, 22), (0.8, 0.8, 4.0), tilt_deg=8.0), "T2W", seed=1)
    truth = known_displacement()
    dwi = render(centred_grid((64, 52, 18), (2.0, 2.0, 5.0), centre=(2.0, 3.0, -2.0)), "DWI", truth, seed=2)
    return t2, dwi, truth


def random_rigid(rng: np.random.Generator, shift_mm: float, angle_deg: float) -> sitk.Euler3DTransform:
    axis = rng.normal(size=3)
    versor = sitk.VersorRigid3DTransform()
    versor.SetCenter(tuple(rng.uniform(-15, 15, 3)))
    versor.SetRotation(tuple(axis / np.linalg.norm(axis)), math.radians(angle_deg))
    direction = rng.normal(size=3)
    versor.SetTranslation(tuple(shift_mm * direction / np.linalg.norm(direction)))
    euler = sitk.Euler3DTransform()
    euler.SetCenter(versor.GetCenter())
    euler.SetMatrix(versor.GetMatrix())
    euler.SetTranslation(versor.GetTranslation())
    return euler


@pytest.fixture(scope="module")
def pair():
    return make_pair()


@pytest.fixture(scope="module")
def study_images():
    """A four-sequence study: DWI and ADC share one displacement (one acquisition), CE-T1WI another."""
    t2, dwi, dwi_truth = make_pair()
    dwi_grid = centred_grid((64, 52, 18), (2.0, 2.0, 5.0), centre=(2.0, 3.0, -2.0))
    adc = render(dwi_grid, "ADC", dwi_truth, seed=3)
    cet1_truth = random_rigid(np.random.default_rng(11), 5.0, 3.0)
    cet1 = render(centred_grid((100, 84, 28), (1.1, 1.1, 3.0), centre=(-3.0, 0.0, 1.0)), "CET1", cet1_truth, seed=4)
    images = {"T2W": t2, "DWI": dwi, "ADC": adc, "CET1": cet1}
    return images, {"DWI": dwi_truth, "ADC": dwi_truth, "CET1": cet1_truth}


@pytest.fixture(scope="module")
def registered(study_images):
    images, _ = study_images
    return register_to_t2(images)


# --- one pair ------------------------------------------------------------------------------------

def test_known_displacement_is_recovered_at_the_tumour(pair):
    t2, dwi, truth = pair
    points = tumour_points()
    before = point_errors(truth, sitk.Euler3DTransform(), points)
    assert before.min() > 4.0  # the test starts misaligned by the 6 mm / 4 degree displacement

    result = register_rigid(t2, dwi)

    errors = point_errors(truth, result.transform, points)
    assert errors.max() < 1.5, f"tumour misregistered by up to {errors.max():.2f} mm (mean {errors.mean():.2f})"
    assert isinstance(result, RegistrationResult)
    assert result.converged and result.metric_value < result.initial_metric_value
    assert 3.0 < result.rotation_deg < 5.0  # the 4 degree rotation is found (not compensated by a shift)
    assert result.iterations > 0 and 0 < result.seconds < 30
    assert [level["spacing_mm"] for level in result.levels] == [8.0, 4.0, 2.0]
    assert result.levels[0]["grid_size"][2] == 11  # 22 slices of 4 mm -> 8 mm: anisotropy-aware pyramid


@pytest.mark.parametrize("initializer", ["geometry", "moments"])
def test_other_initializers_also_recover_the_displacement(pair, initializer):
    t2, dwi, truth = pair
    result = register_rigid(t2, dwi, initializer=initializer)
    assert result.initializer == initializer and result.to_dict()["initializer"] == initializer
    assert point_errors(truth, result.transform, tumour_points()).max() < 1.5


def test_result_description_matches_the_transform(pair):
    t2, dwi, truth = pair
    result = register_rigid(t2, dwi)
    record = json.loads(to_json(result.to_dict()))  # JSON-serialisable, no NaN
    matrix = np.asarray(record["matrix"])
    centre = np.asarray(record["center_mm"])
    point = np.array([5.0, -3.0, 7.0])
    expected = np.asarray(result.transform.TransformPoint(tuple(point)))
    assert np.allclose(matrix @ point + np.asarray(record["offset_mm"]), expected, atol=1e-9)
    assert np.allclose(matrix @ (point - centre) + centre + np.asarray(record["translation_mm"]), expected, atol=1e-9)
    assert record["rotation_angle_deg"] == pytest.approx(result.rotation_deg)
    assert record["final_metric_value"] <= record["initial_metric_value"]
    assert record["settings"]["seed"] == result.settings["seed"]
    assert "fixed" in record["convention"] and "moving" in record["convention"]


def test_rotation_angle_of_the_known_displacement():
    assert rotation_angle_deg(np.eye(3)) == 0.0
    matrix = np.asarray(known_displacement().GetMatrix()).reshape(3, 3)
    assert rotation_angle_deg(matrix) == pytest.approx(4.0, abs=1e-9)


def test_same_seed_same_result_and_time_guard(pair):
    t2, dwi, _ = pair
    a = register_rigid(t2, dwi, seed=5)
    b = register_rigid(t2, dwi, seed=5)
    # multi-threaded sums may differ in the last bits; anything above rounding would be a bug
    assert np.allclose(a.transform.GetParameters(), b.transform.GetParameters(), atol=1e-6, rtol=0)

    limited = register_rigid(t2, dwi, max_seconds=0.05)
    assert not limited.converged
    assert "wall-clock" in limited.stop_reason
    assert len(limited.levels) < 3 and limited.seconds < 5.0


def test_fixed_mask_restricts_sampling_and_centres_rotation(pair):
    t2, dwi, truth = pair
    # a box around the tumour region: registration driven by the region that matters
    box = sitk.Image(t2.GetSize(), sitk.sitkUInt8)
    box.CopyInformation(t2)
    _, centre, axes = TUMOUR
    index = np.asarray(t2.TransformPhysicalPointToContinuousIndex(centre))
    half = np.ceil((np.asarray(axes) + 25.0) / np.asarray(t2.GetSpacing())).astype(int)
    lo, hi = np.maximum(0, index - half).astype(int), np.minimum(t2.GetSize(), index + half).astype(int)
    array = sitk.GetArrayFromImage(box)
    array[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(t2)

    result = register_rigid(t2, dwi, fixed_mask=mask)

    assert point_errors(truth, result.transform, tumour_points()).max() < 1.5
    mask_centre = np.asarray(t2.TransformContinuousIndexToPhysicalPoint(tuple(((lo + hi - 1) / 2.0).tolist())))
    assert np.allclose(result.transform.GetCenter(), mask_centre, atol=1e-6)
    assert result.settings["fixed_mask"] is True


# --- a whole study onto the T2WI grid ------------------------------------------------------------

def test_register_to_t2_puts_every_sequence_on_the_t2_grid(study_images, registered):
    images, truths = study_images
    resampled, results = registered
    assert set(resampled) == {"T2W", "DWI", "ADC", "CET1"} and set(results) == {"DWI", "ADC", "CET1"}
    assert resampled["T2W"] is images["T2W"]  # the reference is not touched
    for role in ("DWI", "ADC", "CET1"):
        assert same_grid(resampled[role], images["T2W"]) and resampled[role].GetPixelID() == sitk.sitkFloat32
        errors = point_errors(truths[role], results[role].transform, tumour_points())
        assert errors.max() < 1.5, f"{role}: tumour misregistered by up to {errors.max():.2f} mm"
    # the DWI is moved with the ADC's transform (one acquisition), not registered on its own
    assert results["DWI"].transform.GetParameters() == results["ADC"].transform.GetParameters()
    assert results["DWI"].settings["transform_from"] == "ADC" and results["DWI"].iterations == 0
    assert "transform_from" not in results["ADC"].settings and results["ADC"].iterations > 0
    record = json.loads(to_json(results["DWI"].to_dict()))  # JSON as it is: no NaN for "not measured"
    assert record["final_metric_value"] is None and record["parameters"] == list(results["ADC"].transform.GetParameters())
    # resampled DWI looks like the DWI rendered directly on the T2 grid without displacement
    reference = sitk.GetArrayFromImage(render(images["T2W"], "DWI", None, noise=0.0))
    moved = sitk.GetArrayFromImage(resampled["DWI"])
    unregistered = sitk.GetArrayFromImage(
        resample_to_reference(images["DWI"], images["T2W"], None, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    )
    inside = moved > 0
    corr = np.corrcoef(moved[inside], reference[inside])[0, 1]
    corr_before = np.corrcoef(unregistered[inside], reference[inside])[0, 1]
    assert corr > 0.9 and corr > corr_before + 0.05


def test_lone_dwi_is_registered_by_itself(study_images):
    images, truths = study_images
    resampled, results = register_to_t2({"T2W": images["T2W"], "DWI": images["DWI"]})
    assert set(resampled) == {"T2W", "DWI"}
    assert "transform_from" not in results["DWI"].settings and results["DWI"].iterations > 0
    assert point_errors(truths["DWI"], results["DWI"].transform, tumour_points()).max() < 1.5


def test_dwi_and_adc_on_different_grids_are_registered_separately(study_images):
    images, truths = study_images
    adc = resample_to_reference(images["ADC"], images["CET1"], None)  # another grid, same position
    _, results = register_to_t2({"T2W": images["T2W"], "DWI": images["DWI"], "ADC": adc})
    for role in ("DWI", "ADC"):
        assert "transform_from" not in results[role].settings and results[role].iterations > 0
        assert point_errors(truths[role], results[role].transform, tumour_points()).max() < 1.5


class FakeStudy:
    """What io.study.Study offers the registration: roles_present(), image(role), .case."""

    def __init__(self, images, case=None):
        self._images = images
        self.case = case

    def roles_present(self):
        return ["other", *self._images]

    def image(self, role):
        return self._images[role]


def test_register_study_to_case_writes_case_transforms_and_record(tmp_path, study_images):
    images, truths = study_images
    small = {role: images[role] for role in ("T2W", "DWI", "ADC")}
    out = register_study_to_case(FakeStudy(small), tmp_path / "case", progress=None)

    case = load_case(out)
    assert case.roles == ["T2W", "ADC", "DWI"]
    t2 = case.image("T2W")
    assert np.array_equal(sitk.GetArrayFromImage(t2), sitk.GetArrayFromImage(images["T2W"]))
    assert same_grid(case.image("DWI"), t2) and same_grid(case.image("ADC"), t2)

    record = json.loads((out / "registration.json").read_text())
    assert record["reference"] == "T2W" and set(record["sequences"]) == {"DWI", "ADC"}
    assert record["reference_grid"]["size"] == list(images["T2W"].GetSize())
    dwi_record = record["sequences"]["DWI"]
    assert dwi_record["source_grid"]["spacing_mm"] == [2.0, 2.0, 5.0]
    assert record["sequences"]["DWI"]["settings"]["transform_from"] == "ADC"
    assert record["sequences"]["DWI"]["final_metric_value"] is None
    adc_record = record["sequences"]["ADC"]
    assert adc_record["final_metric_value"] < adc_record["initial_metric_value"]
    for role in ("DWI", "ADC"):
        stored = sitk.ReadTransform(str(out / "transforms" / f"{role}.tfm"))
        assert np.allclose(stored.GetParameters(), adc_record["parameters"], atol=1e-9)
        assert point_errors(truths[role], stored, tumour_points()).max() < 1.5


@pytest.mark.parametrize("as_study", [False, True])
def test_register_case_folder_keeps_labels_and_clinical(tmp_path, study_images, as_study):
    images, _ = study_images
    t2 = images["T2W"]
    label = sitk.Cast(render(t2, "DWI", None, noise=0.0) > 0.8, sitk.sitkUInt8)  # the tumour, on the T2 grid
    source = load_case(write_case(tmp_path / "in", {"T2W": t2, "ADC": images["ADC"]}, labels={"tumor": label},
                                  clinical={"age": 51}))
    study = FakeStudy(source.images(), case=source) if as_study else source
    out = register_study_to_case(study, tmp_path / "out")
    case = load_case(out)
    assert case.roles == ["T2W", "ADC"] and case.clinical == {"age": 51}
    manifest = read_manifest(out)  # the folder says it is on the T2WI grid, made from which images
    assert manifest.grid is Grid.T2W
    assert manifest.native_source == (None if as_study else str((tmp_path / "in").resolve()))
    assert manifest.native_sha256 == {role: voxels_sha256(image) for role, image in source.images().items()}
    assert np.array_equal(sitk.GetArrayFromImage(case.label("tumor")), sitk.GetArrayFromImage(label))


def test_existing_output_is_refused_before_any_work(tmp_path, study_images):
    images, _ = study_images
    out = tmp_path / "case"
    out.mkdir()
    (out / "mine.txt").write_text("a reader's notes")
    calls = []
    with pytest.raises(OutputExistsError, match="--overwrite"):
        register_study_to_case(FakeStudy({"T2W": images["T2W"], "ADC": images["ADC"]}), out,
                               progress=lambda f, m: calls.append(m))
    assert calls == [] and (out / "mine.txt").read_text() == "a reader's notes"
    register_study_to_case(FakeStudy({"T2W": images["T2W"]}), out, overwrite=True)
    assert not (out / "mine.txt").exists() and (out / "T2W.nii.gz").is_file()


# --- bad input -----------------------------------------------------------------------------------

def test_missing_t2_and_unknown_roles_are_refused(study_images):
    images, _ = study_images
    with pytest.raises(InputError, match="no T2W image"):
        register_to_t2({"DWI": images["DWI"]})
    with pytest.raises(InputError, match="unknown sequence role.*FLAIR"):
        register_to_t2({"T2W": images["T2W"], "FLAIR": images["DWI"]})
    with pytest.raises(InputError, match="no T2W series"):
        register_study_to_case(FakeStudy({"DWI": images["DWI"]}), "unused")


def test_sequence_that_does_not_overlap_is_refused(study_images):
    images, _ = study_images
    far = sitk.Image(images["DWI"])
    far.SetOrigin(tuple(np.asarray(far.GetOrigin()) + [0.0, 0.0, 400.0]))  # another body region
    with pytest.raises(InputError, match="DWI onto T2W: .*does not overlap"):
        register_to_t2({"T2W": images["T2W"], "DWI": far})
    # a few slices that cover little of the T2WI: overlap below the minimum after registration
    partial = images["CET1"][:, :, 26:]
    with pytest.raises(InputError, match=r"CET1 does not overlap the T2W image after registration: it covers \d+%"):
        register_to_t2({"T2W": images["T2W"], "CET1": partial}, min_overlap=0.2)


@pytest.mark.parametrize(
    "make_moving, message",
    [
        (lambda im: im[:, :, 3], "needs a 3D volume"),
        (lambda im: sitk.Compose(im, im), "one value per voxel"),
        (lambda im: im[:, :, 3:4], "too small to register"),
        (lambda im: "DWI.nii.gz", "expected a SimpleITK image"),
    ],
)
def test_unusable_images_are_refused(pair, make_moving, message):
    t2, dwi, _ = pair
    with pytest.raises(InputError, match=message):
        register_rigid(t2, make_moving(dwi))


def test_bad_options_are_refused(pair):
    t2, dwi, _ = pair
    empty = sitk.Image(t2.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(t2)
    with pytest.raises(InputError, match="fixed mask is empty"):
        register_rigid(t2, dwi, fixed_mask=empty)
    with pytest.raises(InputError, match="unknown initializer 'affine'"):
        register_rigid(t2, dwi, initializer="affine")
    with pytest.raises(InputError, match="max_seconds must be positive"):
        register_rigid(t2, dwi, max_seconds=0)
    with pytest.raises(InputError, match="level spacings must be positive"):
        register_rigid(t2, dwi, level_spacings_mm=[4.0, 0.0])


# --- real data ------------------------------------------------------------------------------------

def test_prostatex_dicom_study_onto_t2_keeps_dwi_and_adc_together(tmp_path):
    """The real study through the study loader: one small transform for the DWI acquisition."""
    from CervicalAILib.study.load import load_study

    study = load_study(refdata_path("mri", "ProstateX-0000_dicom"))
    images = {role: study.image(role) for role in ("T2W", "DWI", "ADC")}
    resampled, results = register_to_t2(images)
    t2 = images["T2W"]
    prostate = np.asarray(t2.TransformContinuousIndexToPhysicalPoint([191.5, 191.5, 9.0]))
    for role in ("DWI", "ADC"):
        assert same_grid(resampled[role], t2)
        assert results[role].displacement_mm(prostate)[0] < 3.0 and results[role].rotation_deg < 3.0
    assert results["DWI"].settings["transform_from"] == "ADC"
    # and a better match than the scanner geometry, with nothing unusual to report
    assert results["ADC"].metric_value < results["ADC"].initial_metric_value
    assert not results["ADC"].warnings
