"""Deep features through pluggable ONNX encoder bundles: values, names, determinism, bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import SimpleITK as sitk
from deep_testdata import ellipsoid_case, reference_features, write_encoder_bundle

from CervicalAILib.bundles.format import load_bundle
from CervicalAILib.contracts.feature_names import deep_name as feature_name
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.features.deep import crop_tumour, extract_deep_features, load_encoder, normalise_crop

CROP_2D = {"mode": "2d", "size": [24, 24], "channels": 3, "margin_mm": 4.0, "spacing_mm": [1.5, 1.5], "fit": True,
           "masking": "tumor", "antialias": True}
ZSCORE = {"clip_percentiles": [0.5, 99.5], "scale": "zscore", "stats_region": "crop", "background": 0.0}
# a site's own network: other input size and channel use, ImageNet normalisation, other dimension,
# batch fixed at 1, pooled (N, D, 1, 1) output beside a logits output it must not use
CROP_IMAGENET = {"mode": "2d", "size": [20, 28], "channels": 3, "channel_mode": "replicate", "margin_mm": 8.0,
                 "spacing_mm": None, "fit": True, "masking": "none", "antialias": False}
IMAGENET = {"clip_percentiles": [1, 99], "scale": "minmax", "channel_mean": [0.485, 0.456, 0.406],
            "channel_std": [0.229, 0.224, 0.225], "background": 0.0}
CROP_3D = {"mode": "3d", "size": [8, 16, 16], "margin_mm": 3.0, "spacing_mm": [2.0, 2.0, 4.0], "masking": "tumor"}


@pytest.fixture(scope="module")
def patient():
    t2, mask = ellipsoid_case(seed=1, texture=40.0)
    adc, _ = ellipsoid_case(seed=2, tumour=80.0, background=200.0)
    cet1, _ = ellipsoid_case(seed=3, tumour=600.0, texture=80.0)
    return {"T2W": t2, "ADC": adc, "CET1": cet1}, mask


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    return {
        "2d": write_encoder_bundle(root / "e2d", CROP_2D, ZSCORE, dim=12, name="tiny2d", seed=1),
        "imagenet": write_encoder_bundle(root / "enet", CROP_IMAGENET, IMAGENET, dim=5, name="site-net", seed=2,
                                         roles=("T2W", "CET1"), onnx_output="pooled", fixed_batch=True,
                                         pooled_output=True, logits=True),
        "3d": write_encoder_bundle(root / "e3d", CROP_3D, ZSCORE, dim=7, name="tiny3d", seed=3),
    }


@pytest.mark.parametrize("which", ["2d", "imagenet", "3d"])
def test_features_equal_the_network_applied_to_the_declared_crop(patient, encoders, which):
    images, mask = patient
    bundle, weights, bias = encoders[which]
    encoder = load_encoder(bundle.path)
    features = extract_deep_features(images, mask, encoder)
    roles = [r for r in ("T2W", "ADC", "DWI", "CET1") if r in images and r in encoder.roles]
    assert list(features) == [feature_name(r, encoder.name, i) for r in roles for i in range(encoder.dim)]
    assert all(type(v) is float for v in features.values())
    for role in roles:
        x = normalise_crop(crop_tumour(images[role], mask, encoder.spec.crop), encoder.spec.intensity, encoder.spec.crop)
        expected = reference_features(x, weights, bias)
        got = np.array([features[feature_name(role, encoder.name, i)] for i in range(encoder.dim)])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
        assert np.any(got > 0)  # the relu does not swallow everything: the test compares real values


def test_feature_names_and_pluggable_declarations(encoders):
    site = load_encoder(encoders["imagenet"][0].path)
    assert site.name == "site-net" and site.dim == 5 and site.roles == ("T2W", "CET1")
    assert site.feature_names("CET1")[4] == "CET1_dl-site-net_F0004"
    assert site.spec.crop.input_shape == (3, 20, 28)
    assert site.summary()["encoder_name"] == "site-net"
    import hashlib

    reference = site.reference()
    assert reference["family"] == "dl-site-net" and reference["name"] == "test-encoder-site-net"
    assert reference["sha256"] == hashlib.sha256((site.bundle.path / "bundle.json").read_bytes()).hexdigest()
    assert feature_name("CET1", "resnet2d", 123) == "CET1_dl-resnet2d_F0123"
    manifest = json.loads((encoders["2d"][0].path / "bundle.json").read_text())
    assert manifest["outputs"]["feature_names"] == "{ROLE}_dl-tiny2d_F{index:04d}"


def test_deterministic_and_independent_of_the_other_sequences(patient, encoders):
    images, mask = patient
    bundle = encoders["2d"][0]
    first = extract_deep_features(images, mask, bundle.path)
    again = extract_deep_features(images, mask, load_encoder(bundle.path))
    assert first == again
    t2_only = extract_deep_features({"T2W": images["T2W"]}, mask, bundle.path)
    assert t2_only == {k: v for k, v in first.items() if k.startswith("T2W_")}
    # different tumours give different features
    other, other_mask = ellipsoid_case(seed=1, texture=40.0, radii_mm=(6.0, 5.0, 8.0))
    assert extract_deep_features({"T2W": other}, other_mask, bundle.path) != t2_only


def test_per_role_masks_and_mask_on_another_grid(patient, encoders):
    images, mask = patient
    bundle = encoders["3d"][0]
    same = extract_deep_features(images, {role: mask for role in images}, bundle.path)
    assert same == extract_deep_features(images, mask, bundle.path)
    finer = sitk.Image([200, 200, 40], sitk.sitkUInt8)
    finer.SetSpacing((0.4, 0.4, 2.0))
    finer.SetOrigin(mask.GetOrigin())
    finer = sitk.Resample(mask, finer, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    warnings: list[str] = []
    moved = extract_deep_features({"T2W": images["T2W"]}, finer, bundle.path, warnings=warnings)
    assert len(warnings) == 1 and "resampled onto the T2W grid" in warnings[0]
    reference = np.array([same[k] for k in moved])
    assert np.corrcoef(reference, np.array(list(moved.values())))[0, 1] > 0.9
    with pytest.raises(InputError, match="no tumour mask given for ADC"):
        extract_deep_features(images, {"T2W": mask}, bundle.path)


def test_roles_missing_or_not_taken(patient, encoders):
    images, mask = patient
    with pytest.raises(InputError, match="DWI sequence is missing"):
        extract_deep_features(images, mask, encoders["2d"][0].path, roles=["T2W", "DWI"])
    with pytest.raises(InputError, match="does not take ADC"):
        extract_deep_features(images, mask, encoders["imagenet"][0].path, roles=["ADC"])
    with pytest.raises(InputError, match="none of the encoder's sequences"):
        extract_deep_features({"ADC": images["ADC"]}, mask, encoders["imagenet"][0].path)
    with pytest.raises(InputError, match="unknown sequence role"):
        extract_deep_features({"FLAIR": images["T2W"]}, mask, encoders["2d"][0].path)
    only = extract_deep_features(images, mask, encoders["2d"][0].path, roles=["CET1"])
    assert len(only) == 12 and all(k.startswith("CET1_dl-tiny2d_") for k in only)


def test_bad_masks_and_images(patient, encoders):
    images, mask = patient
    path = encoders["2d"][0].path
    empty = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(mask)
    with pytest.raises(InputError, match="mask is empty"):
        extract_deep_features(images, empty, path)
    off = sitk.Image(mask)
    off.SetOrigin((0.0, 0.0, 900.0))
    with pytest.raises(InputError, match="does not overlap"):
        extract_deep_features(images, off, path)
    values = sitk.GetArrayFromImage(images["T2W"]).astype(np.float32)
    values[10, 47, 50] = np.nan
    nan_image = sitk.GetImageFromArray(values)
    nan_image.CopyInformation(images["T2W"])
    with pytest.raises(InputError, match="NaN"):
        extract_deep_features({"T2W": nan_image}, mask, path)


def test_tampered_bundle_is_refused(encoders, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(encoders["2d"][0].path, copy)
    raw = bytearray((copy / "encoder.onnx").read_bytes())
    raw[-10] ^= 0xFF
    (copy / "encoder.onnx").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="SHA-256 does not match"):
        load_encoder(copy)


def _rewrite_manifest(src, dst, edit):
    """Copy a bundle and edit its bundle.json (hashes of the artefacts stay valid)."""
    import shutil

    shutil.copytree(src, dst)
    manifest = json.loads((dst / "bundle.json").read_text())
    edit(manifest)
    (dst / "bundle.json").write_text(json.dumps(manifest))
    return dst


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["outputs"].update(dim=13), "outputs.dim declares 13"),
        (lambda m: m["inputs"]["crop"].update(size=[32, 32]), "does not match the declared crop"),
        (lambda m: m["inputs"]["crop"].update(mode="3d", size=[4, 24, 24], channels=1, spacing_mm=None), "has 4 dimensions"),
        (lambda m: m["outputs"].update(onnx_output="logits"), "not a network output"),
        (lambda m: m["outputs"].update(encoder_name="Res_Net"), "lower-case letters"),
        (lambda m: m["inputs"].update(roles=["PET"]), "inputs.roles"),
        (lambda m: m["inputs"]["intensity"].update(scale="robust"), "'scale' is 'robust'"),
        (lambda m: m.update(task="risk-model"), "expected 'encoder'"),
        (lambda m: m["network"].update(file="MODEL_CARD.md"), "must be an .onnx file"),
    ],
)
def test_inconsistent_bundle_declarations_are_refused(encoders, tmp_path, edit, message):
    path = _rewrite_manifest(encoders["2d"][0].path, tmp_path / "edited", edit)
    with pytest.raises(BundleError, match=message):
        load_encoder(path)


def test_gpu_request_falls_back_to_cpu_with_a_warning(encoders, caplog):
    with caplog.at_level(logging.WARNING):
        encoder = load_encoder(load_bundle(encoders["2d"][0].path), device="gpu")
    if encoder.provider == "CUDAExecutionProvider":
        pytest.skip("a CUDA provider is present here")
    assert encoder.provider == "CPUExecutionProvider"
    assert any(r.getMessage() == "encoder network: gpu requested but onnxruntime has no CUDAExecutionProvider here; "
               "fell back to cpu" for r in caplog.records)  # the one wording of bundles/onnx.py
    with pytest.raises(InputError, match="unknown device"):
        load_encoder(encoders["2d"][0].path, device="tpu")


@pytest.mark.parametrize(("purpose", "name", "mode"), [("encoder-2d", "resnet2d", "2d"), ("encoder-3d", "resnet3d", "3d")])
def test_default_encoders(purpose, name, mode):
    """The shipped encoders: declared as documented, small, honest cards, and features that follow the tumour."""
    from CervicalAILib.bundles.defaults import default_bundle_path

    encoder = load_encoder(default_bundle_path(purpose))
    assert (encoder.name, encoder.dim, encoder.spec.crop.mode) == (name, 128, mode)
    assert encoder.roles == ("T2W", "ADC", "DWI", "CET1") and encoder.spec.crop.masking == "tumor"
    manifest = encoder.bundle.manifest
    assert "synthetic" in manifest["training_data"] and "without outcome labels" in manifest["training_data"]
    assert manifest["metrics"]["onnx_max_abs_diff"] <= 1e-4
    assert "Not for clinical use" in (encoder.bundle.path / "MODEL_CARD.md").read_text()
    assert sum(p.stat().st_size for p in encoder.bundle.path.iterdir()) < 6_000_000

    def features(**kwargs):
        image, mask = ellipsoid_case(**kwargs)
        return np.array(list(extract_deep_features({"T2W": image}, mask, encoder).values()))

    reference = features(seed=1, texture=40.0)
    renoised = features(seed=2, texture=40.0)  # same tumour, another noise realisation
    smaller = features(seed=1, texture=40.0, radii_mm=(7.0, 5.0, 9.0))
    darker = features(seed=1, texture=40.0, tumour=250.0)
    smoother = features(seed=1, texture=0.0)
    assert np.all(np.isfinite(reference)) and reference.std() > 0
    # appearance changes move the features far more than noise does
    noise = np.linalg.norm(renoised - reference)
    for changed in (smaller, darker, smoother):
        assert np.linalg.norm(changed - reference) > 2 * noise
