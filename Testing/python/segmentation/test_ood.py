"""Out-of-distribution score: ONNX bottleneck output, fitting and calibration, the runtime score;
domain randomisation (images synthesised from label maps)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.core.errors import BundleError
from CervicalAILib.segmentation import segment_case
from CervicalAILib.segmentation.ood import OOD_MESSAGE, OodModel

pytest.importorskip("sklearn")

from CervicalAILib.research.training.ood import (  # noqa: E402
    add_feature_output,
    add_ood_to_bundle,
    bottleneck_tensor,
    calibrated_threshold,
    fit_ood,
    ood_card_section,
)
from CervicalAILib.research.training.synthesis import SynthesisSettings, synthesize  # noqa: E402

ZSCORE = {"method": "zscore", "foreground_fraction": 0.1, "reference_percentile": 99.0, "clip": 5.0}


# --------------------------------------------------------------------------- fitting and scoring


def test_threshold_is_the_split_conformal_quantile():
    distances = np.arange(1, 41, dtype=float)  # 40 calibration cases: rank ceil(41 x 0.95) = 39
    threshold = calibrated_threshold(distances, 0.05)
    assert threshold == 39.0 and (distances > threshold).sum() == 1
    assert calibrated_threshold(np.arange(1, 101, dtype=float), 0.05) == 96.0  # ceil(101 x 0.95) = 96
    assert calibrated_threshold(np.arange(1, 11, dtype=float), 0.05) == 10.0  # too few cases: the largest
    assert calibrated_threshold([3.0], 0.05) == 3.0
    # the guarantee: over many draws, a new case exceeds the threshold at most 5 % of the time
    rng = np.random.default_rng(0)
    exceed = [rng.normal() > calibrated_threshold(rng.normal(size=40), 0.05) for _ in range(4000)]
    assert np.mean(exceed) <= 0.05 + 0.01


def test_fit_ood_scores_shifted_cases_above_one_and_keeps_its_promise():
    rng = np.random.default_rng(0)
    covariance = np.diag(np.linspace(0.5, 3.0, 8))
    fit = rng.multivariate_normal(np.zeros(8), covariance, size=200)
    calibration = rng.multivariate_normal(np.zeros(8), covariance, size=100)
    held_out = rng.multivariate_normal(np.zeros(8), covariance, size=400)
    shifted = rng.multivariate_normal(np.full(8, 3.0), covariance, size=50)
    document = fit_ood(list(fit), list(calibration), 0.05, provenance={"fit_data": "test"})
    assert document["calibration"]["calibration_false_alarms"] <= 5
    model = OodModel.from_dict(json.loads(json.dumps(document)))  # a JSON round trip: plain data only
    # chi distribution with 8 degrees of freedom: 95th percentile about 3.94
    assert model.threshold == pytest.approx(3.94, rel=0.15)
    false_alarms = np.mean([model.distance(v) > model.threshold for v in held_out])
    assert false_alarms < 0.09  # the 5 % target, within sampling error on other cases
    assert np.mean([model.distance(v) > model.threshold for v in shifted]) > 0.9
    report = model.report([shifted[0], shifted[1]])
    assert report["score"] == pytest.approx(model.distance((shifted[0] + shifted[1]) / 2) / model.threshold, abs=1e-3)
    assert report["unusual"] and report["message"] == OOD_MESSAGE
    # the plain meaning quotes the rate the bundle was calibrated at, not a fixed 5 %
    strict_document = fit_ood(list(fit), list(calibration), 0.025, provenance={"fit_data": "test"})
    strict = OodModel.from_dict(strict_document)
    assert "at most 5%;" in report["meaning"] and "at most 2.5%;" in strict.report([shifted[0]])["meaning"]
    card = ood_card_section("# a model\n\ntext\n", strict_document)
    assert "with probability at most 2.5% (split-conformal quantile of 100 held-out" in card  # and the model card


def test_ood_json_is_checked():
    with pytest.raises(BundleError, match="unknown OOD schema"):
        OodModel.from_dict({"schema": "x"})
    with pytest.raises(BundleError, match="do not fit"):
        OodModel.from_dict({"schema": "cervicalai.ood/1", "mean": [0, 0], "precision": [[1]], "threshold": 1,
                            "output_name": "features"})


# --------------------------------------------------------------------------- the ONNX bottleneck


def test_feature_output_is_the_unet_bottleneck_and_leaves_the_probability_alone(tmp_path):
    pytest.importorskip("torch")
    import onnxruntime as ort
    import torch
    from segmentation_testdata import TINY_ARCH

    from CervicalAILib.research.training.export import export_onnx
    from CervicalAILib.research.training.network import build_network

    torch.manual_seed(0)
    net = build_network(TINY_ARCH, 2, 3).eval()
    export_onnx(net, 2, tmp_path / "plain.onnx", [[8, 16, 16]])
    info = add_feature_output(tmp_path / "plain.onnx", tmp_path / "features.onnx", 2, [8, 16, 16])
    assert info["channels"] == TINY_ARCH["channels"][-1]
    sample = np.random.default_rng(1).normal(size=(1, 2, 8, 32, 32)).astype(np.float32)
    plain = ort.InferenceSession(str(tmp_path / "plain.onnx"), providers=["CPUExecutionProvider"])
    both = ort.InferenceSession(str(tmp_path / "features.onnx"), providers=["CPUExecutionProvider"])
    probability, features = both.run(None, {"image": sample})
    assert np.array_equal(probability, plain.run(None, {"image": sample})[0])
    # the same numbers torch gives for the average of the deepest encoder block's output
    captured = {}
    bottom = net.model[1].submodule[1].submodule[1].submodule  # MONAI UNet: the bottom residual unit
    bottom.register_forward_hook(lambda module, args, output: captured.setdefault("x", output))
    with torch.no_grad():
        net(torch.from_numpy(sample))
    expected = captured["x"].mean(dim=(2, 3, 4)).numpy()
    assert features.shape == (1, 32)
    np.testing.assert_allclose(features, expected, atol=1e-4)
    import onnx

    with pytest.raises(BundleError, match="already has"):
        add_feature_output(tmp_path / "features.onnx", tmp_path / "again.onnx", 2, [8, 16, 16])
    assert bottleneck_tensor(onnx.load(str(tmp_path / "plain.onnx")), 2, [8, 16, 16])[1] == 32


# --------------------------------------------------------------------------- end to end on a bundle


def test_ood_score_in_segment_case_flags_an_unlike_image(tmp_path):
    from segmentation_testdata import make_anatomy_bundle, pelvis

    from CervicalAILib.io.case import write_case

    source = make_anatomy_bundle(tmp_path / "bands", ood=None)
    # the band network's "features" (patch means of x and x^2) already exist: add_ood_to_bundle keeps them
    manifest = {k: v for k, v in source.manifest.items() if k not in ("schema", "files")}
    from segmentation_testdata import band_network

    from CervicalAILib.bundles.format import write_bundle

    with_features = write_bundle(tmp_path / "with-features", manifest, {
        "model.onnx": band_network(with_features=True), "MODEL_CARD.md": "# bands\n"})
    fit_cases, calibration_cases = [], []
    for index in range(12):
        image, _, _ = pelvis(size=(48 + index % 3, 44, 12))
        folder = write_case(tmp_path / "cases" / f"C{index:02d}", {"T2W": image})
        (fit_cases if index < 8 else calibration_cases).append(folder)
    bundle = add_ood_to_bundle(with_features, tmp_path / "scored", fit_cases, calibration_cases, version="0.0.2")
    assert bundle.version == "0.0.2" and bundle.manifest["ood"]["calibration"]["fit_cases"] == 8
    card = bundle.read_text("MODEL_CARD.md")
    assert card.startswith("# bands-seg 0.0.2\n") and "Out-of-distribution score" in card
    assert "Distribution fitted on: cohort cases (8 cases)." in card and "set on: cohort cases (4 cases)." in card
    like, _, _ = pelvis(size=(49, 44, 12))
    result = segment_case({"T2W": like}, bundle=bundle.path)
    assert result.summary["ood"]["available"] and result.summary["ood"]["score"] <= 1.0
    unlike = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 300, (12, 44, 49)).astype(np.float32))
    unlike.CopyInformation(like)
    result = segment_case({"T2W": unlike}, bundle=bundle.path)
    assert result.summary["ood"]["score"] > 1.0 and result.summary["ood"]["unusual"]
    assert OOD_MESSAGE in result.summary["warnings"]


# --------------------------------------------------------------------------- domain randomisation


def test_synthesized_images_follow_the_label_map_with_random_contrast():
    label_map = np.zeros((10, 40, 40), np.uint8)
    label_map[:, 5:35, 5:35] = 1
    label_map[:, 15:25, 10:20] = 2
    label_map[:, 15:25, 22:30] = 3
    first = synthesize(label_map, [ZSCORE, ZSCORE], np.random.default_rng(7))
    again = synthesize(label_map, [ZSCORE, ZSCORE], np.random.default_rng(7))
    other = synthesize(label_map, [ZSCORE, ZSCORE], np.random.default_rng(8))
    assert first.shape == (2, 10, 40, 40) and first.dtype == np.float32
    assert np.array_equal(first, again) and not np.array_equal(first, other)  # seeded, and random
    # normalised as the runtime does: z-scored inside the body mask (which blur and ghosts widen), clipped to +-5
    body = first[:, label_map > 0]
    assert np.abs(first).max() <= 5.0 and np.all(np.abs(body.mean(axis=1)) < 1.0)
    # labels stay distinguishable: the mean of each structure differs from its neighbour's
    means = [[float(c[label_map == k].mean()) for k in (1, 2, 3)] for c in first]
    assert all(min(abs(a - b) for a, b in ((m[0], m[1]), (m[0], m[2]), (m[1], m[2]))) > 0.05 for m in means)
    # contrast differs between channels (each drawn on its own)
    assert not np.allclose(np.argsort(means[0]), np.argsort(means[1])) or means[0] != means[1]
    # air stays darker than the body, so the runtime's body mask still finds the body
    plain = SynthesisSettings(noise_sd=(0.0, 0.0), ghost_probability=0.0, bias_probability=0.0)
    for seed in range(5):
        image = synthesize(label_map, [{"method": "percentile", "low": 0, "high": 100}], np.random.default_rng(seed),
                           plain)[0]
        assert image[label_map == 0].mean() < image[label_map > 0].mean()
