"""A site's own nnU-Net v2 model: the round trip export -> nnU-Net training -> CervicalAI inference.

The model is a real one: the cases are exported with `export_nnunet`, the site's extra organ
annotation (a cervix around each tumour) is added to the exported labels, and nnU-Net's own
planning, preprocessing and trainer train it for a few iterations on the CPU (about half a
minute). nnU-Net's worker pools run as thread pools (the same functions; spawned processes
would import torch again, ~10 s each). nnunetv2 is part of the test environment
(requirements/nnunet-nodeps.txt), so a failing import fails the tests rather than skipping them.
"""

from __future__ import annotations

import json
import os
import shutil
import types
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("torch")

from CervicalAILib.cli import main  # noqa: E402
from CervicalAILib.core.errors import BundleError, InputError  # noqa: E402
from CervicalAILib.io.case import write_case  # noqa: E402
from CervicalAILib.segmentation.nnunet import channel_roles, label_heads, left_right_axis  # noqa: E402

SPACING = (2.0, 2.0, 5.0)
SHAPE_ZYX = (10, 32, 32)
DATASET_ID = 517


def pelvis_case(folder: Path, name: str, seed: int) -> Path:
    """T2W + ADC: a body with a mid-grey 'cervix' ellipsoid holding a bright tumour.

    labels/tumor.nii.gz is the tumour; labels/cervix_truth.nii.gz the cervix around it."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[: SHAPE_ZYX[0], : SHAPE_ZYX[1], : SHAPE_ZYX[2]].astype(float)
    body = ((x - 16) / 15) ** 2 + ((y - 16) / 14) ** 2 <= 1
    centre = np.array([5, 16, 16]) + np.array([0, *rng.integers(-5, 6, 2)])
    mm = np.sqrt(((z - centre[0]) * SPACING[2]) ** 2 + ((y - centre[1]) * SPACING[1]) ** 2
                 + ((x - centre[2]) * SPACING[0]) ** 2)
    cervix = mm <= rng.uniform(16, 18)
    tumour = mm <= rng.uniform(7, 9)
    t2 = 150.0 * body + 120.0 * cervix + 200.0 * tumour + rng.normal(0, 12, x.shape) * body
    adc = 1500.0 * body - 300.0 * cervix - 600.0 * tumour + rng.normal(0, 40, x.shape) * body
    images = {}
    for role, array in (("T2W", t2), ("ADC", adc)):
        image = sitk.GetImageFromArray(array.astype(np.float32))
        image.SetSpacing(SPACING)
        image.SetOrigin((-32.0, -30.0, -25.0))
        images[role] = image
    labels = {}
    for label, array in (("tumor", tumour), ("cervix_truth", cervix & ~tumour)):
        image = sitk.GetImageFromArray(array.astype(np.uint8))
        image.CopyInformation(images["T2W"])
        labels[label] = image
    return write_case(folder / name, images, labels=labels, clinical={"case_id": name})


def _threads_instead_of_processes(monkeypatch) -> None:
    import nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor as fingerprints
    import nnunetv2.experiment_planning.verify_dataset_integrity as verify
    import nnunetv2.preprocessing.preprocessors.default_preprocessor as preprocessor
    import nnunetv2.utilities.utils as utilities

    threads = types.SimpleNamespace(get_context=lambda method: types.SimpleNamespace(Pool=ThreadPool))
    for module in (fingerprints, verify, preprocessor):
        monkeypatch.setattr(module, "multiprocessing", threads)
    monkeypatch.setattr(utilities, "Pool", ThreadPool)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model folder, held-out cases, nnU-Net raw data set folder) of a freshly trained nnU-Net."""
    import torch

    from CervicalAILib.export.nnunet import export_nnunet

    root = tmp_path_factory.mktemp("nnunet")
    cases = [pelvis_case(root / "cases", f"P{n}", seed=n) for n in range(6)]
    held_out = [pelvis_case(root / "held_out", "H1", seed=101)]
    exported = export_nnunet(cases, root / "nnUNet_raw", DATASET_ID, "CervixRoundTrip")
    # the site annotated the cervix as well: label 1 cervix, 2 tumour (names, not numbers, decide)
    for case in cases:
        label_path = exported.path / "labelsTr" / f"{case.name}.nii.gz"
        tumour = sitk.ReadImage(str(label_path))
        cervix = sitk.ReadImage(str(case / "labels" / "cervix_truth.nii.gz"))
        combined = sitk.Cast(cervix, sitk.sitkUInt8) + 2 * sitk.Cast(tumour, sitk.sitkUInt8)
        combined.CopyInformation(tumour)
        sitk.WriteImage(combined, str(label_path), True)
    dataset = json.loads((exported.path / "dataset.json").read_text())
    dataset["labels"] = {"background": 0, "cervix": 1, "tumour": 2}
    (exported.path / "dataset.json").write_text(json.dumps(dataset))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy 2-core machine a second torch thread mostly spins
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("raw", "preprocessed", "results"):
            (root / f"nnUNet_{name}").mkdir(exist_ok=True)
            monkeypatch.setenv(f"nnUNet_{name}", str(root / f"nnUNet_{name}"))
        monkeypatch.setenv("nnUNet_n_proc_DA", "1")  # the planner sizes torch's threads with it
        _threads_instead_of_processes(monkeypatch)
        from nnunetv2.experiment_planning.plan_and_preprocess_api import (
            extract_fingerprints,
            plan_experiments,
            preprocess,
        )
        from nnunetv2.run.run_training import get_trainer_from_args

        extract_fingerprints([DATASET_ID], num_processes=1, check_dataset_integrity=True, verbose=False,
                             show_progress_bar=False)
        plans = plan_experiments([DATASET_ID])
        preprocess([DATASET_ID], plans, configurations=("3d_fullres",), num_processes=(1,), show_progress_bar=False)
        monkeypatch.setenv("nnUNet_n_proc_DA", "0")  # data augmentation in this process
        torch.manual_seed(0)
        trainer = get_trainer_from_args(str(DATASET_ID), "3d_fullres", 0, device=torch.device("cpu"))
        trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch = 2, 25, 2
        trainer.run_training()
        model_folder = Path(trainer.output_folder_base)
    torch.set_num_threads(threads)
    assert (model_folder / "fold_0" / "checkpoint_final.pth").is_file()
    return model_folder, held_out, exported.path


def test_label_and_channel_names_are_mapped_by_name(tmp_path):
    assert label_heads({"background": 0, "Uterine body": 1, "Tumour": 2, "cervix": 3}, tmp_path) == {
        "uterus": 1, "tumor": 2, "cervix": 3}
    # region-based models: channels follow the non-background entries
    assert label_heads({"background": 0, "cervix_with_tumor": [1, 2], "GTV": [2]}, tmp_path) == {
        "cervix_with_tumor": 0, "tumor": 1}
    with pytest.raises(InputError, match="no tumour label"):
        label_heads({"background": 0, "bladder": 1}, tmp_path)
    assert channel_roles({"1": "adc", "0": "T2", "2": "DWI"}, tmp_path) == ["T2W", "ADC", "DWI"]
    with pytest.raises(InputError, match="'FLAIR'"):
        channel_roles({"0": "T2W", "1": "FLAIR"}, tmp_path)
    with pytest.raises(InputError, match="first channel must be the T2WI"):
        channel_roles({"0": "ADC", "1": "T2W"}, tmp_path)


def test_left_right_axis_follows_the_direction_matrix():
    image = sitk.Image(4, 5, 6, sitk.sitkFloat32)
    assert left_right_axis(image) == 2  # axial: x is the last array axis
    image.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))  # sagittal-like: index k runs along x
    assert left_right_axis(image) == 0


def test_nnunet_model_runs_as_nnunet_itself_predicts(trained, tmp_path, monkeypatch):
    """Our input handling gives exactly the probabilities of nnU-Net's own file-based prediction."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from CervicalAILib.segmentation.nnunet import _predict, load_nnunet_model

    model_folder, held_out, _ = trained
    case = held_out[0]
    model = load_nnunet_model(model_folder)
    t2 = sitk.ReadImage(str(case / "T2W.nii.gz"))
    volume = np.stack([sitk.GetArrayFromImage(sitk.ReadImage(str(case / f"{r}.nii.gz"))) for r in ("T2W", "ADC")])
    ours = _predict(model, volume.astype(np.float32), list(t2.GetSpacing()[::-1]))

    import torch

    reference = nnUNetPredictor(use_mirroring=False, device=torch.device("cpu"), allow_tqdm=False)
    reference.initialize_from_trained_model_folder(str(model_folder), use_folds=(0,))
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index, role in enumerate(("T2W", "ADC")):
        shutil.copy(case / f"{role}.nii.gz", inputs / f"H1_{index:04d}.nii.gz")
    _threads_instead_of_processes(monkeypatch)
    (tmp_path / "out").mkdir()
    reference.predict_from_files_sequential(str(inputs), str(tmp_path / "out"), save_probabilities=True)
    theirs = np.load(tmp_path / "out" / "H1.npz")["probabilities"]
    assert theirs.shape == ours.shape == (3, *SHAPE_ZYX)
    assert np.abs(theirs - ours).max() < 1e-4


def test_segment_with_a_site_nnunet_model(trained, tmp_path, capsys):
    model_folder, held_out, _ = trained
    out = tmp_path / "seg"
    assert main(["segment", str(held_out[0]), "--out", str(out), "--nnunet-model", str(model_folder)]) == 0
    summary = json.loads((out / "segmentation.json").read_text())
    assert summary["model"]["backend"] == "nnunetv2" and summary["model"]["label"].endswith("@folds-0")
    assert summary["sequences_used"] == ["T2W", "ADC"]
    # tumour = dataset.json's "tumour" (value 2), the cervix an organ segment: mapped by name
    mask = sitk.ReadImage(str(out / "tumor.nii.gz"))
    truth = sitk.ReadImage(str(held_out[0] / "labels" / "tumor.nii.gz"))
    from CervicalAILib.io import measurements as measure

    assert mask.GetSize() == truth.GetSize() and mask.GetOrigin() == truth.GetOrigin()
    assert measure.dice(mask, truth) > 0.6
    assert json.loads((out / "organs.json").read_text()) == {"cervix": 1}
    organs = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "organs.nii.gz")))
    cervix_truth = sitk.GetArrayFromImage(sitk.ReadImage(str(held_out[0] / "labels" / "cervix_truth.nii.gz")))
    overlap = 2 * ((organs == 1) & (cervix_truth > 0)).sum() / ((organs == 1).sum() + (cervix_truth > 0).sum())
    assert overlap > 0.5
    assert summary["anatomy_gate"]["applied"] and summary["anatomy_gate"]["anatomy_found"]
    assert 0.0 <= summary["confidence"] <= 1.0 and summary["ood"]["available"] is False
    printed = capsys.readouterr().out
    assert "tumour:" in printed and "cervix" in printed


def test_a_checkpoint_carrying_code_is_refused(trained, tmp_path):
    import torch

    from CervicalAILib.segmentation.nnunet import load_checkpoint

    model_folder, _, _ = trained
    safe = load_checkpoint(model_folder / "fold_0" / "checkpoint_final.pth")
    assert "network_weights" in safe
    evil = dict(safe, hook=os.path.join)  # a callable: unpickling it would import and hand out code
    torch.save(evil, tmp_path / "evil.pth")
    with pytest.raises(BundleError, match="does not unpickle"):
        load_checkpoint(tmp_path / "evil.pth")


def test_bad_nnunet_folders_get_one_clear_line(trained, tmp_path, capsys):
    model_folder, held_out, _ = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["segment", str(held_out[0]), "--out", str(tmp_path / "a"), "--nnunet-model", str(empty)]) == 2
    assert "not a trained nnU-Net model folder (no dataset.json)" in capsys.readouterr().err
    unfinished = tmp_path / "unfinished"
    shutil.copytree(model_folder, unfinished, ignore=shutil.ignore_patterns("checkpoint_final.pth"))
    assert main(["segment", str(held_out[0]), "--out", str(tmp_path / "b"), "--nnunet-model", str(unfinished)]) == 2
    assert "no fold_*/checkpoint_final.pth" in capsys.readouterr().err
    assert main(["segment", str(held_out[0]), "--out", str(tmp_path / "c"), "--nnunet-model", str(model_folder),
                 "--model", str(empty)]) == 2
    assert "either --model or --nnunet-model" in capsys.readouterr().err
