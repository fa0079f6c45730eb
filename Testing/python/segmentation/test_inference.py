"""Segmentation runtime: sliding-window reassembly, geometry, post-processing, confidence, bad input.

The networks here are tiny ONNX graphs built with onnx.helper (identity, or a sigmoid of the
normalised T2WI), so every expected value is known exactly without a trained model.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from segmentation_testdata import ZSCORE, make_bundle, onnx_network, phantom

from CervicalAILib.bundles.format import write_bundle
from CervicalAILib.contracts.segmentation import SEGMENTATION_SUMMARY, SegmentationSummary
from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import BundleError, InputError, OutputExistsError
from CervicalAILib.io import measurements as measure
from CervicalAILib.segmentation import segment_case, write_segmentation
from CervicalAILib.segmentation.confidence import binary_entropy, confidence_report
from CervicalAILib.segmentation.postprocess import postprocess_mask
from CervicalAILib.segmentation.preprocess import check_preprocessing, normalize, pad_to_shape, working_grid
from CervicalAILib.segmentation.sliding_window import gaussian_weights, patch_starts, sliding_window_predict

# --- sliding window ---------------------------------------------------------------------------


def test_patch_starts_cover_the_axis():
    for length, patch in [(10, 16), (16, 16), (17, 16), (50, 16), (97, 32)]:
        starts = patch_starts(length, patch, 0.25)
        covered = np.zeros(max(length, patch), bool)
        for s in starts:
            covered[s : s + patch] = True
        assert covered[:length].all()
        assert starts[0] == 0 and starts[-1] == max(length - patch, 0)


def test_gaussian_weights_peak_in_centre():
    w = gaussian_weights((8, 16, 16))
    assert w.max() == pytest.approx(1.0)
    assert w.min() >= 1e-3
    assert w[4, 8, 8] > w[0, 0, 0]


def test_sliding_window_reproduces_a_known_field_through_onnx():
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_network("identity", 2), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    field = rng.random((1, 13, 45, 38)).astype(np.float32)  # odd sizes: patches overlap unevenly
    volume = np.concatenate([field, rng.normal(size=field.shape).astype(np.float32)])

    def run(patch):
        return session.run(None, {"image": patch})[0]

    out = sliding_window_predict(volume, run, (8, 16, 16), overlap=0.5)
    assert out.shape == (1, 13, 45, 38)
    np.testing.assert_allclose(out, field, atol=1e-6)
    # a volume smaller than the patch is padded and cropped back
    small = sliding_window_predict(volume[:, :5, :9, :7], run, (8, 16, 16))
    np.testing.assert_allclose(small, field[:, :5, :9, :7], atol=1e-6)


def test_sliding_window_blends_disagreeing_patches_smoothly():
    # a "network" that outputs its own patch-start position: blending must give values between
    # the disagreeing patches, weighted towards the patch whose centre is nearer
    volume = np.zeros((1, 8, 8, 40), np.float32)
    calls = []

    def run(patch):
        calls.append(1)
        return np.full((1, 1, *patch.shape[2:]), float(len(calls)), np.float32)

    out = sliding_window_predict(volume, run, (8, 8, 16), overlap=0.5)[0]
    assert len(calls) == 4
    row = out[4, 4]
    assert row[0] == pytest.approx(1.0, abs=1e-3) and row[-1] == pytest.approx(4.0, abs=1e-3)
    assert np.all(np.diff(row) >= -1e-5)  # monotone: no seams jumping back


# --- preprocessing ----------------------------------------------------------------------------


def test_working_grid_covers_the_reference_and_is_lps_ordered():
    flipped = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    image, _ = phantom(direction=flipped)
    grid = working_grid(image, (1.5, 1.5, 3.0))
    assert np.allclose(np.asarray(grid.GetDirection()).reshape(3, 3), np.eye(3))
    lo = np.asarray(grid.GetOrigin()) - 0.75 * np.array([1, 1, 2])
    extent = np.asarray(grid.GetSize()) * np.asarray(grid.GetSpacing())
    # reference voxel-edge box: x from -12-0.5*40... flipped x axis runs towards -x
    assert lo[0] == pytest.approx(-12.0 + 0.5 - 40.0, abs=1e-6)
    assert lo[1] == pytest.approx(30.0 + 0.55 - 36 * 1.1, abs=1e-6)
    assert np.all(extent >= np.array([40.0, 39.6, 30.0]) - 1e-6)
    assert np.all(extent < np.array([40.0, 39.6, 30.0]) + np.array([1.5, 1.5, 3.0]))


def test_axis_aligned_working_grid_holds_an_oblique_field_of_view_upright():
    """"LPS" resamples a series tilted 40 degrees about left-right onto a true axial grid covering it all;
    "LPS-nearest" keeps the tilt; an unknown orientation is a bundle error naming it."""
    tilt = np.radians(40.0)
    direction = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(tilt), -np.sin(tilt)], [0.0, np.sin(tilt), np.cos(tilt)]])
    image = sitk.Image([60, 50, 12], sitk.sitkFloat32)
    image.SetSpacing((1.0, 1.0, 4.0))
    image.SetDirection(tuple(direction.ravel()))
    image.SetOrigin((-30.0, -20.0, 5.0))
    kept = working_grid(image, (1.5, 1.5, 4.0))
    np.testing.assert_allclose(np.asarray(kept.GetDirection()).reshape(3, 3), direction, atol=1e-12)
    upright = working_grid(image, (1.5, 1.5, 4.0), "LPS")
    assert np.allclose(np.asarray(upright.GetDirection()).reshape(3, 3), np.eye(3))
    # every corner of the tilted slab lies inside the axial grid, and the grid is no larger than one voxel
    # beyond the slab's bounding box: y spans 50 cos40 + 48 sin40 mm, z 50 sin40 + 48 cos40 mm
    low = np.asarray(upright.GetOrigin()) - 0.5 * np.asarray(upright.GetSpacing())
    high = low + np.asarray(upright.GetSize()) * np.asarray(upright.GetSpacing())
    for i in (-0.5, 59.5):
        for j in (-0.5, 49.5):
            for k in (-0.5, 11.5):
                corner = np.asarray(image.TransformContinuousIndexToPhysicalPoint((i, j, k)))
                assert np.all(corner >= low - 1e-6) and np.all(corner <= high + 1e-6)
    extent = high - low
    expected = np.array([60.0, 50 * np.cos(tilt) + 48 * np.sin(tilt), 50 * np.sin(tilt) + 48 * np.cos(tilt)])
    assert np.all(extent >= expected - 1e-6) and np.all(extent < expected + np.array([1.5, 1.5, 4.0]))
    with pytest.raises(BundleError, match="unknown working-grid orientation 'RAS'"):
        working_grid(image, (1.5, 1.5, 4.0), "RAS")
    with pytest.raises(BundleError, match="unknown working-grid orientation 'RAS'"):
        check_preprocessing({"working_spacing_mm": [1.5, 1.5, 4.0], "orientation": "RAS", "normalization": {},
                             "interpolation": "linear"}, [])


def test_zscore_and_percentile_normalisation():
    rng = np.random.default_rng(2)
    array = np.zeros((10, 20, 20), np.float32)
    array[2:8, 5:15, 5:15] = rng.normal(500, 50, (6, 10, 10))
    out = normalize(array, ZSCORE)
    inside = out[2:8, 5:15, 5:15]
    assert inside.mean() == pytest.approx(0.0, abs=1e-4) and inside.std() == pytest.approx(1.0, abs=1e-3)
    assert out.min() == -5.0  # air clipped
    scaled = normalize(array * 1000, ZSCORE)  # invariant to the scanner's intensity scale
    np.testing.assert_allclose(scaled, out, atol=1e-4)
    pct = normalize(array, {"method": "percentile", "low": 1.0, "high": 99.0})
    assert pct.min() == 0.0 and pct.max() == 1.0
    with pytest.raises(BundleError, match="unknown intensity normalisation"):
        normalize(array, {"method": "histogram-magic"})


def test_pad_to_shape_uses_channel_minimum_and_crops_back():
    volume = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5) + 7
    padded, crop = pad_to_shape(volume, (6, 4, 8))
    assert padded.shape == (2, 6, 4, 8)
    assert padded[0, 0, 0, 0] == volume[0].min() and padded[1, 0, 0, 0] == volume[1].min()
    np.testing.assert_array_equal(padded[crop], volume)


# --- post-processing and confidence ------------------------------------------------------------


def test_postprocess_keeps_main_lesion_near_satellite_and_fills_holes():
    p = np.zeros((20, 40, 40), np.float32)
    p[5:15, 10:20, 10:20] = 0.9  # main lesion (1000 voxels)
    p[9:11, 14:16, 14:16] = 0.2  # necrotic hole inside
    p[8:11, 10:13, 22:25] = 0.8  # satellite 2 voxels away
    p[8:11, 35:38, 35:38] = 0.95  # distant false positive
    mask, report = postprocess_mask(p, (1.0, 1.0, 1.0), {"keep_near_mm": 5.0, "min_satellite_ml": 0.01})
    assert report["components_found"] == 3
    assert mask[10, 15, 15] and mask[9, 11, 23] and not mask[9, 36, 36]
    assert mask.sum() == 1000 + 27
    empty, report = postprocess_mask(np.full((5, 5, 5), 0.3, np.float32), (1, 1, 1))
    assert not empty.any() and report["components_found"] == 0


def test_confidence_is_high_for_crisp_agreeing_passes_and_low_otherwise():
    crisp = np.zeros((6, 20, 20), np.float32)
    crisp[1:5, 5:15, 5:15] = 0.999
    report = confidence_report([crisp, crisp.copy()])
    assert report["confidence"] > 0.95 and report["flagged_slices"] == []
    assert [s["slice"] for s in report["slices"]] == [1, 2, 3, 4]
    shifted = np.zeros_like(crisp)
    shifted[1:5, 5:15, 9:19] = 0.999  # the mirrored pass disagrees: Dice 0.6
    vague = crisp * 0.6
    report = confidence_report([vague, shifted])
    assert report["flip_agreement"] == pytest.approx(0.6, abs=1e-3)
    assert report["confidence"] < 0.6
    assert report["flagged_slices"] and report["flagged_slices"][0]["confidence"] < 0.75
    assert binary_entropy(np.array([0.5]))[0] == pytest.approx(1.0)


# --- the whole runtime -------------------------------------------------------------------------


@pytest.fixture
def t2_bundle(tmp_path):
    return make_bundle(tmp_path / "t2-bundle")


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A CERVICALAI_MODELS folder with a multi-sequence and a T2-only default bundle."""
    root = tmp_path / "models"
    make_bundle(root / "cervix-tumor-seg-mpmri", roles=("T2W", "ADC"), name="tiny-mpmri")
    make_bundle(root / "cervix-tumor-seg-t2", roles=("T2W",), name="tiny-t2")
    monkeypatch.setenv("CERVICALAI_MODELS", str(root))
    return root


def test_segment_case_output_geometry_equals_the_input(t2_bundle):
    oblique = sitk.VersorTransform((0.1, 0.2, 0.95), 0.3).GetMatrix()
    image, truth = phantom(direction=oblique)
    result = segment_case({"T2W": image}, bundle=t2_bundle)
    for output in (result.mask, result.probability):
        assert output.GetSize() == image.GetSize()
        assert output.GetSpacing() == image.GetSpacing()
        assert output.GetOrigin() == image.GetOrigin()
        assert output.GetDirection() == image.GetDirection()
    assert result.mask.GetPixelID() == sitk.sitkUInt8 and result.probability.GetPixelID() == sitk.sitkUInt8
    # the sigmoid network marks the bright sphere: the contour lands where the tumour is
    assert measure.dice(result.mask, truth) > 0.8
    summary = result.summary
    assert summary["tumor_found"] and summary["volume_ml"] == pytest.approx(measure.volume_ml(truth), rel=0.3)
    assert 0.0 <= summary["confidence"] <= 1.0 and summary["flip_agreement"] > 0.8
    assert summary["sequences_used"] == ["T2W"] and summary["device"]["provider"] == "CPUExecutionProvider"
    assert set(summary["seconds"]) >= {"preprocess", "network", "resample_to_t2", "postprocess", "total"}
    json.dumps(summary, allow_nan=False)


def test_write_segmentation_files_and_refusal(tmp_path, t2_bundle):
    image, _ = phantom()
    result = segment_case({"T2W": image}, bundle=t2_bundle)
    out = write_segmentation(result, tmp_path / "out")
    text = (out / SEGMENTATION_SUMMARY).read_text()
    summary = json.loads(text)
    for key in ("volume_ml", "max_diameter_mm", "confidence", "flagged_slices", "model", "device", "seconds"):
        assert key in summary
    typed = SegmentationSummary.from_dict(summary, out / SEGMENTATION_SUMMARY)  # the typed contract, key for key
    assert to_json(typed.to_dict()) == text and SegmentationSummary.from_dict(typed.to_dict()) == typed
    assert typed.confidence == summary["confidence"] and typed.model.name == summary["model"]["name"]
    assert [(f.slice, f.confidence) for f in typed.flagged_slices] == [(f["slice"], f["confidence"])
                                                                       for f in summary["flagged_slices"]]
    mask = sitk.ReadImage(str(out / "tumor.nii.gz"))
    assert mask.GetPixelID() == sitk.sitkUInt8 and mask.GetSize() == image.GetSize()
    assert sitk.ReadImage(str(out / "tumor_probability.nii.gz")).GetPixelID() == sitk.sitkUInt8
    with pytest.raises(OutputExistsError):
        write_segmentation(result, out)


def test_missing_sequence_falls_back_to_the_t2_only_bundle(models_dir):
    image, truth = phantom()
    result = segment_case({"T2W": image})
    assert result.summary["model"]["name"] == "tiny-t2"
    assert result.summary["sequences_used"] == ["T2W"]
    assert "missing ADC" in result.summary["fallback"]
    assert any("T2WI-only" in w for w in result.summary["warnings"])
    adc = sitk.Cast(image, sitk.sitkFloat32)
    full = segment_case({"T2W": image, "ADC": adc})
    assert full.summary["model"]["name"] == "tiny-mpmri" and full.summary["fallback"] is None
    assert full.summary["sequences_used"] == ["T2W", "ADC"]


def test_a_case_without_t2w_is_refused(models_dir):
    image, _ = phantom()
    with pytest.raises(InputError, match="no T2W image"):
        segment_case({"ADC": image, "DWI": image})


def test_sequences_that_do_not_overlap_are_refused(models_dir):
    image, _ = phantom()
    far = sitk.Image(image)
    far.SetOrigin((500.0, 500.0, 500.0))  # "registered" somewhere else entirely
    with pytest.raises(InputError, match="ADC image covers only 0%"):
        segment_case({"T2W": image, "ADC": far})
    on_grid_but_empty = sitk.Image(image.GetSize(), sitk.sitkFloat32)
    on_grid_but_empty.CopyInformation(image)  # what resampling a non-overlapping image gives
    with pytest.raises(InputError, match="do not overlap"):
        segment_case({"T2W": image, "ADC": on_grid_but_empty})


def test_empty_prediction_says_no_tumour_found(t2_bundle):
    image, _ = phantom()
    flat = sitk.GetImageFromArray(np.full(sitk.GetArrayViewFromImage(image).shape, 100.0, np.float32))
    flat.CopyInformation(image)
    result = segment_case({"T2W": flat}, bundle=t2_bundle)
    assert not result.found and result.summary["status"] == "no tumour found"
    assert result.summary["volume_ml"] == 0.0 and result.summary["largest_slice_index"] is None
    assert result.summary["flagged_slices"] == [] and 0.0 <= result.summary["confidence"] <= 1.0
    assert any("no tumour found" in w for w in result.summary["warnings"])
    assert sitk.GetArrayViewFromImage(result.mask).max() == 0


def test_out_of_range_input_is_segmented_with_warnings(tmp_path):
    bundle = make_bundle(
        tmp_path / "b",
        training_range={
            "t2w_spacing_mm": {"min": [0.6, 0.6, 3.0], "max": [0.8, 0.8, 5.0]},
            "intensity_p99": {"T2W": [200.0, 600.0]},
            "tolerance_factor": 1.5,
            "intensity_tolerance_factor": 3.0,
        },
    )
    image, _ = phantom(spacing=(1.0, 1.1, 2.5), scale=100.0)  # in range: p99 = 300
    assert segment_case({"T2W": image}, bundle=bundle).summary["warnings"] == []
    coarse, _ = phantom(spacing=(3.0, 3.0, 10.0), radius_mm=15.0, scale=1e5)
    summary = segment_case({"T2W": coarse}, bundle=bundle).summary
    text = " ".join(summary["warnings"])
    assert "spacing" in text and "intensities" in text
    assert summary["tumor_found"]  # still segmented


def test_a_t2wi_plane_beyond_the_trained_tilts_is_segmented_with_a_warning(tmp_path):
    """A sagittal T2WI (slices left-right) given to a network trained on axial and oblique axial T2WIs (up to
    63.5 degrees from axial, as the shipped ones declare): segmented, with a sentence naming the plane; an
    oblique axial T2WI within the range gets none."""
    bundle = make_bundle(tmp_path / "b", training_range={"t2w_tilt_deg": {"min": 0.0, "max": 63.5}, "tilt_tolerance_deg": 10.0})
    sagittal = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)  # columns: x -> posterior, y -> inferior, slices -> left
    image, _ = phantom(direction=sagittal)
    summary = segment_case({"T2W": image}, bundle=bundle).summary
    plane = [w for w in summary["warnings"] if "slice plane" in w]
    assert plane == ["the T2W slice plane is 90 degrees from axial (sagittal), beyond the 0-64 degrees of the T2WIs "
                     "the network was trained on: use the axial T2WI if the study has one, and check the contour carefully"]
    assert summary["tumor_found"]  # still segmented
    tilt = np.radians(50.0)  # an oblique axial plan, tilted about left-right: within the range
    oblique = (1.0, 0.0, 0.0, 0.0, np.cos(tilt), np.sin(tilt), 0.0, -np.sin(tilt), np.cos(tilt))
    image, _ = phantom(direction=oblique)
    assert not any("slice plane" in w for w in segment_case({"T2W": image}, bundle=bundle).summary["warnings"])


def test_tampered_or_unknown_bundles_are_refused(tmp_path, t2_bundle):
    image, _ = phantom()
    tampered = tmp_path / "tampered"
    shutil.copytree(t2_bundle.path, tampered)
    (tampered / "model.onnx").write_bytes((tampered / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(BundleError, match="SHA-256 does not match"):
        segment_case({"T2W": image}, bundle=tampered)
    unknown = tmp_path / "unknown"
    shutil.copytree(t2_bundle.path, unknown)
    manifest = json.loads((unknown / "bundle.json").read_text())
    manifest["schema"] = "cervicalai.bundle/99"
    (unknown / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="unknown bundle schema"):
        segment_case({"T2W": image}, bundle=unknown)
    risk = write_bundle(
        tmp_path / "risk",
        {k: v for k, v in t2_bundle.manifest.items() if k not in ("schema", "files")} | {"task": "risk-model"},
        {"model.onnx": (t2_bundle.path / "model.onnx").read_bytes(), "MODEL_CARD.md": "# x\n"},
    )
    with pytest.raises(BundleError, match="expected 'segmentation'"):
        segment_case({"T2W": image}, bundle=risk.path)


def test_explicit_bundle_with_missing_inputs_names_them(tmp_path):
    bundle = make_bundle(tmp_path / "b", roles=("T2W", "ADC", "DWI"))
    image, _ = phantom()
    with pytest.raises(InputError, match="missing: ADC, DWI"):
        segment_case({"T2W": image}, bundle=bundle)


def test_gpu_request_falls_back_to_cpu_and_says_so(t2_bundle):
    import onnxruntime as ort

    image, _ = phantom()
    summary = segment_case({"T2W": image}, bundle=t2_bundle, device="gpu").summary
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA provider")
    assert summary["device"]["provider"] == "CPUExecutionProvider"
    assert "fell back to cpu" in summary["device"]["note"]


def test_runtime_path_never_imports_torch(tmp_path):
    import subprocess
    import sys

    bundle = make_bundle(tmp_path / "b")
    code = (
        "import sys, SimpleITK as sitk\n"
        "from CervicalAILib.segmentation import segment_case\n"
        "import CervicalAILib.cli.segment\n"
        "image = sitk.Image(24, 24, 8, sitk.sitkFloat32) + 1.0\n"
        f"segment_case({{'T2W': image}}, bundle={str(bundle.path)!r})\n"
        "assert 'torch' not in sys.modules and 'monai' not in sys.modules, 'torch imported at run time'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_lesion_box_gives_the_mirrored_pass_real_context():
    from CervicalAILib.segmentation.inference import lesion_box

    p = np.zeros((20, 100, 120), np.float32)
    p[9:11, 40:45, 110:118] = 0.6  # near the right edge
    box = lesion_box(p, [16, 80, 80])
    assert [b.stop - b.start for b in box] == [16, 80, 80]  # one whole patch of image
    assert box[2].stop == 120 and box[2].start == 40  # shifted inside the volume, not padded
    assert box[0].start <= 9 and box[0].stop >= 11 and box[1].start <= 40 and box[1].stop >= 45
    big = np.zeros((20, 100, 120), np.float32)
    big[2:18, 5:95, 10:110] = 0.9
    box = lesion_box(big, [16, 80, 80])
    assert box == (slice(0, 20), slice(0, 100), slice(0, 120))
    assert lesion_box(np.zeros((4, 4, 4)), [16, 80, 80]) is None
