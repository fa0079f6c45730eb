"""Segmentation training: a seconds-long smoke run on tiny volumes, ONNX/torch agreement, resume.

The tiny cases are made here with write_case (a bright irregular lesion in a body ellipse),
so the test needs neither the generator nor the shipped bundles.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("torch")
pytest.importorskip("monai")

from segmentation_testdata import TINY_ARCH  # noqa: E402

from CervicalAILib.bundles.format import load_bundle  # noqa: E402
from CervicalAILib.core.errors import BundleError, InputError  # noqa: E402
from CervicalAILib.io.case import write_case  # noqa: E402
from CervicalAILib.research.training import TrainConfig, find_cases, prepare_case, train_segmentation  # noqa: E402
from CervicalAILib.research.training.export import export_onnx  # noqa: E402
from CervicalAILib.research.training.network import build_network  # noqa: E402
from CervicalAILib.research.training.train import augmentation, default_preprocessing, split_cases  # noqa: E402
from CervicalAILib.segmentation import segment_case  # noqa: E402


def tiny_case(folder, index: int):
    rng = np.random.default_rng(index)
    size = (40, 40, 12)
    z, y, x = np.mgrid[: size[2], : size[1], : size[0]].astype(float)
    body = ((x - 20) / 17) ** 2 + ((y - 20) / 15) ** 2 <= 1
    cx, cy, cz = 20 + rng.integers(-5, 6), 20 + rng.integers(-4, 5), 6
    radius = rng.uniform(4, 8)
    tumour = ((x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) * 3) ** 2) <= radius**2
    t2 = 200.0 * body + 250.0 * tumour + rng.normal(0, 10, x.shape) * body
    adc = 1.8e-3 * body - 0.9e-3 * tumour
    images = {}
    for role, array in (("T2W", t2), ("ADC", adc)):
        image = sitk.GetImageFromArray(array.astype(np.float32))
        image.SetSpacing((1.0, 1.0, 3.0))
        image.SetOrigin((-20.0, -20.0, -18.0))
        images[role] = image
    label = sitk.GetImageFromArray(tumour.astype(np.uint8))
    label.CopyInformation(images["T2W"])
    # organ label map (values by name in labels/organs.json, deliberately not 1, 2, 3 in table order):
    # body 3, a cervix ring around the tumour 7, a bladder in front of it 5, the tumour 9
    cervix = (((x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) * 3) ** 2) <= (radius + 4) ** 2) & ~tumour
    bladder = ((x - 20) ** 2 + (y - 33) ** 2 + ((z - 6) * 3) ** 2 <= 16) & body & ~cervix & ~tumour
    organs = np.where(body, 3, 0) + 4 * cervix + 2 * bladder + 6 * tumour
    organ_image = sitk.GetImageFromArray(organs.astype(np.uint8))
    organ_image.CopyInformation(images["T2W"])
    table = json.dumps({"body": 3, "bladder": 5, "cervix": 7, "tumour": 9})
    return write_case(folder / f"case{index:02d}", images, labels={"tumor": label, "organs": organ_image},
                      extra_files={"labels/organs.json": table})


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    for index in range(5):
        tiny_case(root, index)
    (root / "generator.json").write_text(json.dumps({"version": "test-1", "seed": 7, "n_cases": 5}))
    return root


def _config(cohort, out, **extra):
    settings = dict(
        cases=[str(cohort)],
        out=str(out),
        roles=["T2W", "ADC"],
        name="tiny",
        epochs=2,
        iterations_per_epoch=3,
        batch_size=2,
        patch_size_xyz=[16, 16, 8],
        inference_patch_size_xyz=[32, 32, 8],
        working_spacing_mm=[2.0, 2.0, 3.0],
        architecture=TINY_ARCH,
        val_fraction=0.4,
        register=False,
        threads=1,
    )
    settings.update(extra)
    return TrainConfig(**settings)


def test_training_smoke_exports_a_bundle_the_runtime_runs(tiny_cohort, tmp_path):
    out = tmp_path / "tiny-bundle"
    report = train_segmentation(_config(tiny_cohort, out))
    assert report["epochs_run"] == 2 and report["training_cases"] == 3
    assert report["onnx_max_abs_difference"] <= 1e-4
    bundle = load_bundle(out, task="segmentation")
    manifest = bundle.manifest
    assert [i["role"] for i in manifest["inputs"]] == ["T2W", "ADC"]
    assert manifest["preprocessing"]["working_spacing_mm"] == [2.0, 2.0, 3.0]
    assert manifest["preprocessing"]["normalization"]["ADC"]["method"] == "zscore"
    assert manifest["provenance"]["data"][0]["seed"] == 7 and manifest["provenance"]["data"][0]["version"] == "test-1"
    assert "not for clinical use" in manifest["training_data"]
    assert "not for clinical use" in bundle.read_text("MODEL_CARD.md")
    assert manifest["training_range"]["t2w_spacing_mm"]["min"] == [1.0, 1.0, 3.0]
    assert manifest["training_range"]["t2w_tilt_deg"] == {"min": 0.0, "max": 0.0}  # the tiny cases are axial
    assert len(manifest["validation"]["cases"]) == 2
    # the run-time threshold is the one with the best validation Dice among the candidates
    scores = manifest["validation"]["dice_mean_by_threshold"]
    assert manifest["postprocessing"]["threshold"] == manifest["validation"]["threshold"]
    assert scores[f"{manifest['validation']['threshold']:.2f}"] == max(scores.values())
    assert (tmp_path / "tiny-bundle.work" / "last.pt").is_file()  # checkpoints stay out of the bundle
    assert not any(p.suffix == ".pt" for p in out.iterdir())
    # the runtime loads and runs it (barely trained: only the plumbing and geometry are checked)
    case = find_cases([tiny_cohort])[0]
    t2 = sitk.ReadImage(str(case / "T2W.nii.gz"))
    result = segment_case({"T2W": t2, "ADC": sitk.ReadImage(str(case / "ADC.nii.gz"))}, bundle=out)
    assert result.mask.GetSize() == t2.GetSize() and result.mask.GetOrigin() == t2.GetOrigin()
    assert result.summary["model"]["name"] == "tiny" and result.summary["sequences_used"] == ["T2W", "ADC"]
    # --export-only writes the same network again from the work folder, without training
    again = train_segmentation(_config(tiny_cohort, out, export_only=True, overwrite=True))
    assert again["epochs_run"] == 2 and again["best_epoch"] == report["best_epoch"]
    assert load_bundle(out).manifest["files"]["model.onnx"] == manifest["files"]["model.onnx"]


def test_held_out_calibration_cases_choose_the_thresholds(tiny_cohort, tmp_path_factory, tmp_path):
    """--calibration: the tumour threshold and the OOD threshold come from labelled cases never trained
    on (not from the few validation cases), and the bundle and its card say which."""
    held_out = tmp_path_factory.mktemp("held-out")
    for index in (11, 12, 13):
        tiny_case(held_out, index)
    out = tmp_path / "calibrated"
    report = train_segmentation(_config(tiny_cohort, out, epochs=1, calibration=[str(held_out)]))
    manifest = load_bundle(out).manifest
    validation = manifest["validation"]
    assert validation["threshold_chosen_on"] == f"3 held-out calibration cases ({held_out.name})"
    assert manifest["postprocessing"]["threshold"] == validation["threshold"] == report["validation"]["threshold"]
    scores = validation["dice_mean_by_threshold"]
    assert scores[f"{validation['threshold']:.2f}"] == max(scores.values())
    assert manifest["ood"]["calibration"]["calibration_cases"] == 3  # not the 2 validation cases
    assert f"best mean Dice on 3 held-out calibration cases ({held_out.name})" in load_bundle(out).read_text("MODEL_CARD.md")
    # a calibration case that is also trained on is refused before anything is prepared
    work = tmp_path / "overlap.work"
    with pytest.raises(InputError, match="also a training case"):
        train_segmentation(_config(tiny_cohort, tmp_path / "overlap", calibration=[str(tiny_cohort / "case01")],
                                   work_dir=str(work)))
    assert not (work / "cache").exists()
    # --export-only without a checkpoint says so before preparing any case
    empty = tmp_path / "empty.work"
    with pytest.raises(InputError, match="no checkpoint"):
        train_segmentation(_config(tiny_cohort, tmp_path / "none", export_only=True, work_dir=str(empty)))
    assert not (empty / "cache").exists()


def test_multi_structure_training_with_domain_randomisation(tiny_cohort, tmp_path):
    """Tumour + organs (read by name), half of the samples synthesised from the label maps; the
    bundle names its outputs, declares the anatomy gate and an OOD score, and the runtime writes organs."""
    out = tmp_path / "organs-bundle"
    report = train_segmentation(_config(tiny_cohort, out, structures=["tumor", "Cervix", "bladder"], synth_fraction=0.5))
    manifest = load_bundle(out, task="segmentation").manifest
    assert [o["name"] for o in manifest["outputs"]] == ["tumor", "cervix", "bladder"]
    assert manifest["anatomy_gate"]["required"] == ["cervix", "uterus"]
    assert manifest["provenance"]["recipe"]["domain_randomisation"]["fraction"] == 0.5
    assert set(report["validation"]["structure_dice_mean_working_grid"]) == {"tumor", "cervix", "bladder"}
    assert set(report["history"][0]["val_structure_dice_mean"]) == {"tumor", "cervix", "bladder"}
    # each organ is cut where its median Dice on the calibration cases is best (ties: the higher threshold)
    by_threshold = manifest["validation"]["organ_dice_median_by_threshold"]
    assert set(manifest["organ_threshold"]) == set(by_threshold) == {"cervix", "bladder"}
    for name, scores in by_threshold.items():
        best = max(scores.values())
        assert manifest["organ_threshold"][name] == max(float(t) for t, v in scores.items() if v == best)
    card = load_bundle(out).read_text("MODEL_CARD.md")
    assert f"cervix {manifest['organ_threshold']['cervix']}, bladder {manifest['organ_threshold']['bladder']}, each the " \
           "threshold with the best median Dice on the 2 validation cases" in card
    ood = manifest["ood"]
    assert ood["calibration"]["fit_cases"] == 3 and ood["calibration"]["calibration_cases"] == 2
    assert manifest["network"]["features"]["channels"] == TINY_ARCH["channels"][-1]
    case = find_cases([tiny_cohort])[0]
    images = {role: sitk.ReadImage(str(case / f"{role}.nii.gz")) for role in ("T2W", "ADC")}
    result = segment_case(images, bundle=out)
    assert result.summary["ood"]["available"] and result.summary["ood"]["score"] >= 0
    assert [o["name"] for o in result.summary["organs"]] == ["cervix", "bladder"]
    assert result.summary["anatomy_gate"]["applied"]
    assert result.organ_labels == {"cervix": 1, "bladder": 2}


def test_prepared_targets_follow_the_label_table_by_name(tiny_cohort):
    case = find_cases([tiny_cohort])[0]
    pre = default_preprocessing(["T2W"], (1.0, 1.0, 3.0))
    prepared = prepare_case(case, ["T2W"], pre, register=False, structures=["tumor", "bladder", "cervix"],
                            with_label_map=True)
    organs = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels" / "organs.nii.gz")))
    assert prepared.targets.shape == (3, 12, 40, 40)
    assert np.array_equal(prepared.targets[1], organs == 5) and np.array_equal(prepared.targets[2], organs == 7)
    assert np.array_equal(prepared.label_map, organs)  # same grid here: nearest neighbour is the identity
    with pytest.raises(InputError, match="has no uterus"):
        prepare_case(case, ["T2W"], pre, register=False, structures=["tumor", "uterus"])
    with pytest.raises(InputError, match="first trained structure must be the tumour"):
        prepare_case(case, ["T2W"], pre, register=False, structures=["cervix", "tumor"])


def test_resume_continues_where_the_last_run_stopped(tiny_cohort, tmp_path):
    # an interrupted run: same settings, stopped by its time budget after the first epoch
    first = train_segmentation(_config(tiny_cohort, tmp_path / "a", max_minutes=1e-6))
    resumed = train_segmentation(_config(tiny_cohort, tmp_path / "a", epochs=2, resume=True, overwrite=True))
    straight = train_segmentation(_config(tiny_cohort, tmp_path / "b", epochs=2))
    assert first["epochs_run"] == 1 and resumed["epochs_run"] == 2
    assert first["history"][0]["loss"] == straight["history"][0]["loss"]  # same seed, same run
    # every epoch is seeded from (seed, epoch): resuming gives the uninterrupted run's numbers
    assert resumed["history"][1]["loss"] == pytest.approx(straight["history"][1]["loss"], rel=1e-5)


def test_fine_tuning_starts_from_a_bundle_and_keeps_it_when_no_epoch_beats_it(tiny_cohort, tmp_path):
    first = train_segmentation(_config(tiny_cohort, tmp_path / "start"))
    # same cohort and seed: the same validation cases, so the starting model must score what its bundle says
    tuned = train_segmentation(_config(tiny_cohort, tmp_path / "tuned", epochs=1, learning_rate=1e-12,
                                       init_from=str(tmp_path / "start")))
    start = tuned["initialised_from"]
    assert start["label"] == "tiny@1.0.0" and start["torch_vs_onnx_max_abs_difference"] <= 1e-4
    assert start["model_sha256"] == load_bundle(tmp_path / "start").manifest["files"]["model.onnx"]["sha256"]
    assert round(tuned["history"][0]["val_dice_mean"], 4) == pytest.approx(
        first["validation"]["dice_mean_working_grid"], abs=2e-4)
    # a learning rate of 1e-12 changes nothing: no epoch beats the start, so the starting weights are exported
    assert tuned["best_epoch"] == 0
    manifest = load_bundle(tmp_path / "tuned").manifest
    assert manifest["provenance"]["initialised_from"]["label"] == "tiny@1.0.0"
    card = load_bundle(tmp_path / "tuned").read_text("MODEL_CARD.md")
    assert "started from the weights of tiny@1.0.0" in card and "epoch 0 is the starting model" in card
    # a random start gives another first epoch
    straight = train_segmentation(_config(tiny_cohort, tmp_path / "fresh", epochs=1))
    assert tuned["history"][0]["loss"] != pytest.approx(straight["history"][0]["loss"], rel=1e-3)
    with pytest.raises(InputError, match="its outputs"):
        train_segmentation(_config(tiny_cohort, tmp_path / "bad", structures=["tumor", "cervix"],
                                   init_from=str(tmp_path / "start")))
    # --export-only --export-final: a run's last epoch, whatever its score: the exported network computes what
    # the last checkpoint's weights compute
    train_segmentation(_config(tiny_cohort, tmp_path / "moved", init_from=str(tmp_path / "start")))
    final = train_segmentation(_config(tiny_cohort, tmp_path / "final", init_from=str(tmp_path / "start"),
                                       work_dir=str(tmp_path / "moved.work"), export_only=True, export_final=True))
    assert final["best_epoch"] == 2 and final["exported_epoch"] == "final"
    assert _onnx_vs_checkpoint(tmp_path / "final" / "model.onnx", tmp_path / "moved.work" / "last.pt") <= 1e-4
    exported = load_bundle(tmp_path / "final")
    assert exported.manifest["files"]["model.onnx"]["sha256"] != start["model_sha256"]  # trained, not the start
    assert "(final epoch 2 of 2)" in exported.read_text("MODEL_CARD.md")
    assert exported.manifest["provenance"]["exported_epoch"] == "final"


def _onnx_vs_checkpoint(onnx_path, checkpoint_path) -> float:
    """Largest difference between an exported network's probabilities and those of a checkpoint's weights."""
    import onnxruntime as ort
    import torch

    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)["model"]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()[0].shape[1]
    outputs = session.get_outputs()[0].shape[1]
    net = build_network(TINY_ARCH, inputs, outputs).eval()
    net.load_state_dict(state)
    sample = torch.randn(1, inputs, 8, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = torch.sigmoid(net(sample)).numpy()
    return float(np.abs(session.run(None, {"image": sample.numpy()})[0] - expected).max())


def test_onnx_export_matches_torch(tmp_path):
    import onnxruntime as ort
    import torch

    torch.manual_seed(3)
    net = build_network(TINY_ARCH, 3).eval()
    difference = export_onnx(net, 3, tmp_path / "m.onnx", [[8, 16, 16], [12, 24, 40]])
    assert difference <= 1e-4
    sample = torch.randn(1, 3, 4, 32, 24)  # a shape the export never saw
    with torch.no_grad():
        expected = torch.sigmoid(net(sample)).numpy()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    actual = session.run(None, {"image": sample.numpy()})[0]
    np.testing.assert_allclose(actual, expected, atol=1e-4)
    assert expected.std() > 0  # a real network output, not a constant


def test_prepared_case_matches_the_runtime_grid(tiny_cohort):
    case = find_cases([tiny_cohort])[0]
    prepared = prepare_case(case, ["T2W", "ADC"], default_preprocessing(["T2W", "ADC"], (2.0, 2.0, 3.0)), register=False)
    assert prepared.image.shape == (2, 12, 20, 20) and prepared.label.shape == (12, 20, 20)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels" / "tumor.nii.gz")))
    # tumour volume preserved by the working-grid label (within partial-volume error)
    assert prepared.label.sum() * 2 * 2 * 3 == pytest.approx(truth.sum() * 3.0, rel=0.25)


def test_bad_training_input(tiny_cohort, tmp_path):
    with pytest.raises(InputError, match="no case folders"):
        find_cases([tmp_path])
    with pytest.raises(InputError, match="at least 2 cases"):
        split_cases([tiny_cohort / "case00"], 0.1, 1, 0)
    with pytest.raises(InputError, match="multiples of"):
        train_segmentation(_config(tiny_cohort, tmp_path / "x", patch_size_xyz=[20, 16, 8]))
    with pytest.raises(InputError, match="lacks DWI"):
        train_segmentation(_config(tiny_cohort, tmp_path / "y", roles=["T2W", "DWI"]))
    with pytest.raises(BundleError):
        from CervicalAILib.segmentation.preprocess import check_preprocessing

        check_preprocessing({"working_spacing_mm": [1, 1], "normalization": {}, "interpolation": "linear"}, ["T2W"])


def test_train_seg_command_options(tiny_cohort, tmp_path, capsys):
    from CervicalAILib.cli import main

    out = tmp_path / "cli-bundle"
    common = ["train-seg", str(tiny_cohort), "--roles", "T2W,ADC", "--epochs", "1", "--iterations", "2",
              "--patch", "16,16,8", "--inference-patch", "32,32,8", "--spacing", "2,2,3", "--val-fraction", "0.4",
              "--no-register", "--threads", "1"]
    assert main([*common, "--out", str(out), "--structures", "tumor", "--synth-fraction", "0",
                 "--channels", "4,8,16,32", "--orientation", "LPS"]) == 0
    manifest = load_bundle(out).manifest
    assert manifest["preprocessing"]["orientation"] == "LPS"  # the runtime builds the grid the network saw
    assert [o["name"] for o in manifest["outputs"]] == ["tumor"] and "anatomy_gate" not in manifest
    assert manifest["network"]["architecture"]["channels"] == [4, 8, 16, 32] and manifest["version"] == "1.0.0"
    assert manifest["ood"]["calibration"]["calibration_cases"] == 2
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "x"), "--channels", "4,8"]) == 2
    assert "--channels needs 4 positive numbers" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "y"), "--synth-fraction", "1.5"]) == 2
    assert "--synth-fraction must be between 0 and 1" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "y"), "--tilt-degrees", "nan"]) == 2
    assert "--tilt-degrees must be between 0 and 45, got nan" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "y"), "--scale-fraction", "0.5"]) == 2
    assert "--scale-fraction must be at least 0 and under 0.5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage_error:  # argparse's own choice check
        main([*common, "--out", str(tmp_path / "y"), "--orientation", "RAS"])
    assert usage_error.value.code == 2 and "invalid choice: 'RAS'" in capsys.readouterr().err
    assert main(["train-seg", str(tiny_cohort), "--add-ood", str(out), "--out", str(tmp_path / "z")]) == 2
    assert "--add-ood needs --calibration" in capsys.readouterr().err
    # fine-tuning never writes over the bundle it starts from, even with --overwrite
    assert main([*common, "--out", str(out), "--init-from", str(out), "--overwrite", "--channels", "4,8,16,32"]) == 2
    assert str(out) in capsys.readouterr().err and load_bundle(out).manifest == manifest


def _slices_holding_a_plane(transforms, seed: int) -> int:
    """How many slices of an augmented patch a one-slice plane spreads over (affine applied or not)."""
    import torch

    transforms.set_random_state(seed)
    image = torch.zeros((1, 24, 40, 40))
    image[0, 12] = 1.0  # one axial slice, as the working grid has it
    out = transforms({"image": image.clone(), "label": image.clone()})
    return int((out["label"][0].sum(dim=(1, 2)) > 0).sum())


def test_tilt_augmentation_turns_the_slice_plane_only_when_asked():
    """Oblique axial studies (slices tilted against the pelvis) threw the shipped networks off: off by default,
    as those networks were trained; --tilt-degrees spreads one slice over several, within the converted angle."""
    flat = augmentation([24, 32, 32])
    assert max(_slices_holding_a_plane(flat, seed) for seed in range(12)) == 1
    tilted = augmentation([24, 32, 32], tilt_degrees=20.0, spacing_zyx=(4.0, 1.5, 1.5))
    spread = [_slices_holding_a_plane(tilted, seed) for seed in range(12)]
    assert max(spread) > 1  # some draws tilt the plane
    # 20 degrees of physical tilt across 32 pixels of 1.5 mm rise at most 32 * 1.5 * tan 20 deg / 4 mm = 4.4 slices
    # per axis, so the plane covers at most about 2 x 4.4 + 1 slices (plus the in-plane turn's corners); 20 degrees
    # taken as voxel-index degrees (no spacing conversion) spreads it over up to 19 of the 24
    assert max(spread) <= 11
    unconverted = augmentation([24, 32, 32], tilt_degrees=20.0, spacing_zyx=(1.5, 1.5, 1.5))
    assert max(_slices_holding_a_plane(unconverted, seed) for seed in range(12)) > 11
