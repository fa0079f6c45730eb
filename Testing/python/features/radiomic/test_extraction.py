"""CervicalAILib.features.radiomic: settings, feature names, full and model-driven extraction, bad input."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.features.radiomic import (
    MIN_ROI_VOXELS,
    extract,
    extract_features,
    load_settings,
    parse_feature_name,
    settings_sha256,
)
from conftest import REPO

REQUIRED_IMAGE_TYPES = {"Original", "Wavelet", "LoG", "LBP3D", "Gradient"}
FEATURE_CLASSES = {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}

# A model's selection in the style of seed 004 (four wavelet, two LBP, one gradient feature),
# plus shape, LoG, first-order and every texture class so that each path is exercised.
SELECTED = [
    "T2W_wavelet-HLH_gldm_SmallDependenceEmphasis",
    "ADC_wavelet-LLH_glcm_Idmn",
    "T2W_wavelet-HHL_firstorder_Skewness",
    "ADC_wavelet-LHH_glszm_ZoneEntropy",
    "T2W_lbp-3D-m1_glrlm_RunEntropy",
    "ADC_lbp-3D-k_firstorder_Median",
    "T2W_gradient_ngtdm_Busyness",
    "T2W_original_shape_Maximum3DDiameter",
    "ADC_log-sigma-2-0-mm-3D_glcm_Correlation",
    "T2W_original_glszm_LargeAreaEmphasis",
]


def _texture(rng, shape, spacing, sigma_mm):
    noise = sitk.GetImageFromArray(rng.standard_normal(shape).astype(np.float32))
    noise.SetSpacing(spacing)
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(noise, sigma_mm))
    return smooth / smooth.std()


def make_case(seed=0, size=(64, 64, 12), spacing=(0.7, 0.7, 4.0), radii_mm=(10.0, 9.0, 10.0)):
    """Small pelvic-like case: textured tissue, an ellipsoidal tumour; T2W (int16), ADC (1e-6 mm2/s), mask."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = size
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float32)
    r = np.sqrt(
        ((x - nx / 2) * spacing[0] / radii_mm[0]) ** 2
        + ((y - ny / 2) * spacing[1] / radii_mm[1]) ** 2
        + ((z - nz / 2) * spacing[2] / radii_mm[2]) ** 2
    )
    tumour = r < 1
    shape = (nz, ny, nx)
    t2 = 250 + 60 * _texture(rng, shape, spacing, 4.0)
    t2[tumour] = (380 + 45 * _texture(rng, shape, spacing, 2.0))[tumour]
    t2 = np.clip(t2 + 8 * rng.standard_normal(shape), 0, None)
    adc = 1700 + 150 * _texture(rng, shape, spacing, 4.0)
    adc[tumour] = (850 + 120 * _texture(rng, shape, spacing, 2.0))[tumour]
    images = {}
    for role, array in (("T2W", t2), ("ADC", adc)):
        image = sitk.GetImageFromArray(np.round(array).astype(np.int16))
        image.SetSpacing(spacing)
        image.SetOrigin((-20.0, -30.0, 10.0))
        images[role] = image
    mask = sitk.GetImageFromArray(tumour.astype(np.uint8))
    mask.CopyInformation(images["T2W"])
    return images, mask


def same_value(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.fixture(scope="module")
def case():
    return make_case()


@pytest.fixture(scope="module")
def full(case):
    images, mask = case
    return extract(images, mask)


# ---------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("role", ["T2W", "ADC", "DWI", "CET1"])
def test_default_settings_per_sequence(role):
    params = load_settings(role)
    setting = params["setting"]
    assert set(params["imageType"]) == REQUIRED_IMAGE_TYPES
    assert set(params["featureClass"]) == FEATURE_CLASSES
    assert setting["label"] == 1
    assert len(setting["resampledPixelSpacing"]) == 3 and setting["interpolator"] == "sitkBSpline"
    assert setting["binWidth"] > 0
    assert params["imageType"]["LoG"]["sigma"] == [1.0, 2.0, 3.0]
    if role == "ADC":  # quantitative: not normalised, bin width in 1e-6 mm2/s
        assert setting["normalize"] is False and setting["binWidth"] >= 10
    else:  # arbitrary units: z-scored and scaled so that a bin width means the same at every centre
        assert setting["normalize"] is True and setting["normalizeScale"] == 100


def test_settings_hash_ignores_key_order():
    params = load_settings("T2W")
    reordered = {key: params[key] for key in reversed(list(params))}
    assert settings_sha256(reordered) == settings_sha256(params)
    changed = load_settings("T2W")
    changed["setting"]["binWidth"] = 11
    assert settings_sha256(changed) != settings_sha256(params)


def test_load_settings_bad_input(tmp_path):
    with pytest.raises(InputError, match="unknown sequence role 'FLAIR'"):
        load_settings("FLAIR")
    with pytest.raises(InputError, match="not found"):
        load_settings("T2W", tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("setting: [unclosed\n")
    with pytest.raises(InputError, match="broken.yaml.*not a readable YAML"):
        load_settings("T2W", broken)
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(
        "setting:\n  binWidth: -5\nimageType:\n  Original: {}\nfeatureClass:\n  firstorder: []\n"
    )
    with pytest.raises(InputError, match="invalid.yaml.*pyradiomics rejects"):
        load_settings("T2W", invalid)
    no_types = tmp_path / "no_types.yaml"
    no_types.write_text("setting:\n  binWidth: 5\nfeatureClass:\n  firstorder: []\n")
    with pytest.raises(InputError, match="imageType"):
        load_settings("T2W", no_types)


# ---------------------------------------------------------------------------------- names


def test_parse_feature_name():
    assert parse_feature_name("CET1_wavelet-HLH_gldm_SmallDependenceEmphasis") == (
        "CET1",
        "wavelet-HLH",
        "gldm",
        "SmallDependenceEmphasis",
    )
    assert parse_feature_name("T2W_original_shape_Maximum3DDiameter") == (
        "T2W",
        "original",
        "shape",
        "Maximum3DDiameter",
    )
    assert parse_feature_name("ADC_log-sigma-2-0-mm-3D_glcm_Idmn").image_type == "log-sigma-2-0-mm-3D"
    assert parse_feature_name("DWI_lbp-3D-k_firstorder_Median").feature_class == "firstorder"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("FLAIR_original_firstorder_Mean", "unknown sequence prefix 'FLAIR'"),
        ("T2W_original_glcm_NoSuchFeature", "has no feature 'NoSuchFeature'"),
        ("T2W_original_texture_Mean", "unknown feature class 'texture'"),
        ("T2W_blurred_firstorder_Mean", "'blurred' is not an image type"),
        ("T2W_wavelet-HLH_shape_Sphericity", "shape features exist only for the original image"),
        ("CET1_wavelet.HLH_gldm_SmallDependenceEmphasis", "did you mean 'CET1_wavelet-HLH_gldm_"),
        ("original_firstorder_Mean", "not of the form"),
    ],
)
def test_parse_feature_name_errors(name, message):
    with pytest.raises(InputError, match=message):
        parse_feature_name(name)


# ---------------------------------------------------------------------------------- extraction


def _expected_feature_count(params) -> int:
    """Features a full extraction must give: shape once + every image x every texture class."""
    from radiomics import getFeatureClasses

    classes = getFeatureClasses()

    def n_features(name):
        return sum(1 for deprecated in classes[name].getFeatureNames().values() if not deprecated)

    per_image = sum(n_features(name) for name in params["featureClass"] if name != "shape")
    sigma = params["imageType"]["LoG"]["sigma"]
    n_images = 1 + 8 + len(sigma) + (params["setting"]["lbp3DLevels"] + 1) + 1
    return n_features("shape") + n_images * per_image


def test_full_extraction_names_values_and_provenance(full):
    features = full.features
    for role in ("T2W", "ADC"):
        names = [name for name in features if name.startswith(role + "_")]
        assert len(names) == _expected_feature_count(load_settings(role))
    assert all(name.split("_", 1)[0] in ("T2W", "ADC") for name in features)
    assert not any("diagnostics" in name for name in features)
    assert all(type(value) is float for value in features.values())
    assert "T2W_wavelet-HLH_gldm_SmallDependenceEmphasis" in features
    assert "ADC_lbp-3D-m2_glrlm_RunEntropy" in features
    # shape is computed on the original image only
    assert not any("_shape_" in name and "_original_" not in name for name in features)
    # the ADC tumour is ~850e-6 mm2/s; ADC is not normalised, so its first-order mean says so
    assert 700 < features["ADC_original_firstorder_Mean"] < 1000
    # ~2 cm tumour (ellipsoid 20 x 18 x 20 mm)
    assert 17 < features["T2W_original_shape_Maximum3DDiameter"] < 24
    provenance = full.provenance
    assert provenance["mode"] == "full" and provenance["pyradiomics_version"]
    t2 = provenance["roles"]["T2W"]
    assert t2["radiomics_spacing"] == [1.0, 1.0, 4.0]
    assert t2["settings_source"] == "default:T2W.yaml" and len(t2["settings_sha256"]) == 64
    assert len(t2["images"]) == 16 and t2["roi_voxels"] > t2["roi_voxels_radiomics_grid"] > MIN_ROI_VOXELS
    assert provenance["roles"]["ADC"]["radiomics_spacing"] == [1.5, 1.5, 4.0]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # plain pyradiomics uses deprecated scipy calls
@pytest.mark.parametrize("role", ["T2W", "ADC"])
def test_full_extraction_equals_plain_pyradiomics(role):
    """Our step-by-step driver gives what pyradiomics' own execute() gives, on a case large enough
    for the image to be cropped before resampling (normalised T2W, quantitative ADC)."""
    from radiomics import featureextractor

    images, mask = make_case(seed=3, size=(160, 160, 10), radii_mm=(8.0, 7.0, 9.0))
    ours = extract({role: images[role]}, mask)
    assert ours.provenance["roles"][role]["image_cropped_to"] != list(images[role].GetSize())
    extractor = featureextractor.RadiomicsFeatureExtractor(load_settings(role))
    plain = {
        f"{role}_{name}": float(value)
        for name, value in extractor.execute(sitk.Cast(images[role], sitk.sitkFloat32), mask).items()
        if not name.startswith("diagnostics_")
    }
    assert ours.features.keys() == plain.keys()
    different = [
        name
        for name in plain
        if not (
            same_value(plain[name], ours.features[name])
            or math.isclose(plain[name], ours.features[name], rel_tol=1e-9, abs_tol=1e-9)
        )
    ]
    assert different == []


def test_model_driven_extraction_is_identical_to_full(case, full):
    images, mask = case
    reported = []
    result = extract(images, mask, features=SELECTED, progress=lambda f, m: reported.append((f, m)))
    assert list(result.features) == SELECTED  # exactly the requested names, in the requested order
    for name in SELECTED:
        assert same_value(result.features[name], full.features[name]), name
        assert type(result.features[name]) is float
    # only the images the selection needs were computed
    assert set(result.provenance["roles"]["T2W"]["images"]) == {
        "wavelet-HLH",
        "wavelet-HHL",
        "lbp-3D-m1",
        "gradient",
        "original",
    }
    assert set(result.provenance["roles"]["ADC"]["images"]) == {
        "wavelet-LLH",
        "wavelet-LHH",
        "lbp-3D-k",
        "log-sigma-2-0-mm-3D",
    }
    assert result.provenance["mode"] == "model-driven"
    fractions = [fraction for fraction, _ in reported]
    assert all(0.0 <= f <= 1.0 for f in fractions) and fractions[-1] == 1.0
    assert fractions == sorted(fractions)


def test_model_driven_single_role_and_extract_features(case, full):
    images, mask = case
    names = ["ADC_original_firstorder_10Percentile", "ADC_original_shape_Sphericity"]
    values = extract_features(images, mask, features=names)
    assert values == {name: full.features[name] for name in names}


def test_settings_given_as_dict_and_path(case, tmp_path):
    images, mask = case
    params = load_settings("T2W")
    params["setting"]["binWidth"] = 20
    path = tmp_path / "T2W.yaml"
    import yaml

    path.write_text(yaml.safe_dump(params))
    name = ["T2W_original_glcm_JointEntropy"]
    from_dict = extract(images, mask, settings={"T2W": params}, features=name)
    from_path = extract(images, mask, settings={"T2W": path}, features=name)
    default = extract(images, mask, features=name)
    assert from_dict.features == from_path.features
    # coarser bins -> lower joint entropy than with the default bin width 10
    assert from_dict.features[name[0]] < default.features[name[0]]
    assert from_path.provenance["roles"]["T2W"]["settings_source"] == str(path)
    with pytest.raises(InputError, match="no radiomics settings given for the ADC image"):
        extract(images, mask, settings={"T2W": params}, features=["ADC_original_firstorder_Mean"])


# ---------------------------------------------------------------------------------- mask grids


def test_mask_on_another_grid_is_resampled_with_a_warning(case, full):
    images, mask = case
    names = ["T2W_original_shape_VoxelVolume", "T2W_original_firstorder_Mean"]
    # the same tumour on a coarser grid (1.4 mm in-plane, shifted origin) that covers the image
    reference = sitk.Image([34, 34, 12], sitk.sitkUInt8)
    reference.SetSpacing((1.4, 1.4, 4.0))
    reference.SetOrigin((-20.5, -30.5, 10.0))
    coarse = sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    result = extract({"T2W": images["T2W"]}, coarse, features=names)
    assert any("not on the T2W image grid" in w and "nearest neighbour" in w for w in result.warnings)
    assert result.provenance["roles"]["T2W"]["mask_resampled_to_image_grid"] is True
    # identical to resampling the mask ourselves first
    resampled = sitk.Resample(coarse, images["T2W"], sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    expected = extract({"T2W": images["T2W"]}, resampled, features=names)
    assert expected.warnings == [] and result.features == expected.features
    # and close to the original tumour
    volume = result.features["T2W_original_shape_VoxelVolume"]
    assert volume == pytest.approx(full.features["T2W_original_shape_VoxelVolume"], rel=0.15)


def test_mask_outside_the_image_is_refused(case):
    images, mask = case
    far = sitk.Image(mask)
    far.SetOrigin((500.0, 500.0, 500.0))
    with pytest.raises(InputError, match="lies entirely outside the T2W image"):
        extract_features({"T2W": images["T2W"]}, far)
    half_out = sitk.Image(mask)
    half_out.SetOrigin((-20.0 + 20.0, -30.0, 10.0))  # shifted 20 mm: the tumour pokes out of the image
    with pytest.raises(InputError, match=r"% of the tumour mask lies outside the T2W image"):
        extract_features({"T2W": images["T2W"]}, half_out)


# ---------------------------------------------------------------------------------- bad input


def _blank_mask(case):
    images, mask = case
    blank = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    blank.CopyInformation(mask)
    return images, blank


def test_empty_mask(case):
    images, blank = _blank_mask(case)
    with pytest.raises(InputError, match="tumour mask is empty"):
        extract_features(images, blank)


def test_mask_of_one_voxel(case):
    images, blank = _blank_mask(case)
    blank[32, 32, 6] = 1
    with pytest.raises(InputError, match="single voxel.*cannot compute shape or texture"):
        extract_features(images, blank)


def test_mask_too_small_after_resampling(case):
    images, blank = _blank_mask(case)
    for i in range(3):  # 3 x 3 in-plane voxels: 2.1 x 2.1 mm, a few voxels on the 1 mm radiomics grid
        for j in range(3):
            blank[30 + i, 32 + j, 6] = 1
    with pytest.raises(
        InputError, match=f"voxel\\(s\\) on the T2W radiomics grid.*at least {MIN_ROI_VOXELS}"
    ):
        extract_features({"T2W": images["T2W"]}, blank)


def test_mask_that_is_a_line(case):
    images, blank = _blank_mask(case)
    for i in range(12):
        blank[26 + i, 32, 6] = 1
    with pytest.raises(
        InputError, match="pyradiomics refused the tumour mask on the T2W image.*too few dimensions"
    ):
        extract_features({"T2W": images["T2W"]}, blank)


def test_mask_with_another_label_only(case):
    images, mask = case
    with pytest.raises(InputError, match=r"no voxel with label 1 \(labels present: \[2\]\)"):
        extract_features(images, mask * 2)


def test_nan_in_image(case):
    images, mask = case
    broken = sitk.Cast(images["ADC"], sitk.sitkFloat32)
    broken[5, 5, 5] = float("nan")
    with pytest.raises(InputError, match="ADC image contains 1 NaN or infinite voxel"):
        extract_features({"T2W": images["T2W"], "ADC": broken}, mask)
    # a model that needs only T2W is not stopped by a broken ADC
    values = extract_features(
        {"T2W": images["T2W"], "ADC": broken}, mask, features=["T2W_original_firstorder_Mean"]
    )
    assert math.isfinite(values["T2W_original_firstorder_Mean"])


def test_requested_feature_that_does_not_exist(case):
    images, mask = case
    with pytest.raises(InputError, match="has no feature 'Happiness'"):
        extract_features(images, mask, features=["T2W_original_firstorder_Happiness"])
    with pytest.raises(InputError, match="unknown sequence prefix 'T1W'"):
        extract_features(images, mask, features=["T1W_original_firstorder_Mean"])
    # a valid pyradiomics name the settings do not produce (no LoG sigma 5 mm)
    with pytest.raises(
        InputError, match=r"do not produce the image 'log-sigma-5-0-mm-3D'.*log-sigma-1-0-mm-3D"
    ):
        extract_features(images, mask, features=["T2W_log-sigma-5-0-mm-3D_firstorder_Mean"])
    # deprecated in pyradiomics, hence not part of the full extraction
    with pytest.raises(InputError, match="deprecated"):
        extract_features(images, mask, features=["T2W_original_glcm_SumVariance"])
    with pytest.raises(InputError, match="requested twice"):
        extract_features(images, mask, features=["T2W_original_firstorder_Mean"] * 2)


def test_requested_role_the_case_lacks(case):
    images, mask = case
    with pytest.raises(
        InputError, match=r"need the DWI image\(s\), which this case lacks \(case has: T2W, ADC\)"
    ):
        extract_features(
            images, mask, features=["T2W_original_firstorder_Mean", "DWI_original_firstorder_Mean"]
        )


def test_bad_images_argument(case):
    _, mask = case
    with pytest.raises(InputError, match="at least one image"):
        extract_features({}, mask)
    with pytest.raises(InputError, match="unknown sequence role 'PD'"):
        extract_features({"PD": mask}, mask)


def test_adc_in_wrong_units_is_flagged(case):
    images, mask = case
    adc_mm2 = sitk.Cast(images["ADC"], sitk.sitkFloat32) * 1e-3  # 0.85 instead of 850
    result = extract({"ADC": adc_mm2}, mask, features=["ADC_original_firstorder_Median"])
    assert any("looks like 1e-3 mm2/s" in w for w in result.warnings)
    assert result.features["ADC_original_firstorder_Median"] == pytest.approx(0.85, abs=0.1)


# ---------------------------------------------------------------------------------- import name


@pytest.mark.parametrize("cwd", [".", "CervicalAI", "/"])
def test_import_radiomics_is_pyradiomics(cwd):
    """The engine's radiomic features package never shadows pyradiomics' top-level `radiomics`."""
    code = (
        "import CervicalAILib.features.radiomic as ours, radiomics; "
        "from radiomics import featureextractor; "
        "assert ours.__name__ == 'CervicalAILib.features.radiomic'; "
        "assert 'site-packages' in radiomics.__file__, radiomics.__file__; "
        "print(radiomics.__version__)"
    )
    directory = REPO / cwd if cwd != "/" else Path("/")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=directory, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("v3")

