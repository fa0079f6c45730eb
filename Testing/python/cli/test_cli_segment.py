"""`cervicalai segment` end to end on case folders (tiny hand-built ONNX bundles, no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from segmentation_testdata import make_bundle, phantom

from CervicalAILib.cli import main
from CervicalAILib.io.case import write_case


@pytest.fixture
def case(tmp_path):
    image, truth = phantom(size=(48, 44, 14))
    return write_case(tmp_path / "case", {"T2W": image}, labels={"tumor": truth}), image


def test_segment_command_writes_mask_probability_and_json(tmp_path, case, capsys):
    folder, image = case
    bundle = make_bundle(tmp_path / "bundle")
    status = main(["segment", str(folder), "--out", str(tmp_path / "out"), "--model", str(bundle.path), "--json"])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tumor_found"] and summary["model"]["label"] == "tiny-seg@0.0.1"
    assert summary["input"] == str(folder) and summary["seconds"]["registration"] >= 0
    mask = sitk.ReadImage(str(tmp_path / "out" / "tumor.nii.gz"))
    assert mask.GetSize() == image.GetSize() and np.allclose(mask.GetOrigin(), image.GetOrigin())
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels" / "tumor.nii.gz")))
    found = sitk.GetArrayFromImage(mask)
    assert 2 * (truth & found).sum() / (truth.sum() + found.sum()) > 0.8
    assert summary["volume_ml"] == pytest.approx(found.sum() * np.prod(image.GetSpacing()) / 1000, rel=1e-3)
    # never overwrites without --overwrite
    status = main(["segment", str(folder), "--out", str(tmp_path / "out"), "--model", str(bundle.path)])
    assert status == 2 and "--overwrite" in capsys.readouterr().err


def test_segment_command_refuses_a_tampered_bundle(tmp_path, case, capsys):
    folder, _ = case
    bundle = make_bundle(tmp_path / "bundle")
    manifest = json.loads((bundle.path / "bundle.json").read_text())
    manifest["inference"]["overlap"] = 0.9  # bundle.json edited: fine; the network swapped: refused
    (bundle.path / "bundle.json").write_text(json.dumps(manifest))
    (bundle.path / "model.onnx").write_bytes(b"not a network")
    status = main(["segment", str(folder), "--out", str(tmp_path / "out"), "--model", str(bundle.path)])
    assert status == 2
    assert "SHA-256 does not match" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_segment_command_without_t2w(tmp_path, capsys):
    image, _ = phantom()
    folder = tmp_path / "no-t2"
    folder.mkdir()
    sitk.WriteImage(image, str(folder / "ADC.nii.gz"))
    status = main(["segment", str(folder), "--out", str(tmp_path / "out")])
    assert status == 2
    assert "T2" in capsys.readouterr().err


def test_segment_command_human_output_for_empty_prediction(tmp_path, capsys):
    flat = sitk.Image(40, 36, 12, sitk.sitkFloat32) + 100.0
    folder = write_case(tmp_path / "flat", {"T2W": flat})
    bundle = make_bundle(tmp_path / "bundle")
    status = main(["segment", str(folder), "--out", str(tmp_path / "out"), "--model", str(bundle.path)])
    assert status == 0
    out = capsys.readouterr().out
    assert "no tumour found" in out
    summary = json.loads((tmp_path / "out" / "segmentation.json").read_text())
    assert summary["status"] == "no tumour found" and summary["volume_ml"] == 0.0


def test_registered_case_is_not_registered_again_and_transforms_are_written(tmp_path, capsys):
    from CervicalAILib.pipeline.segment import load_images
    from CervicalAILib.registration.rigid import write_transform

    image, truth = phantom(size=(48, 44, 14))
    adc = sitk.Cast(image, sitk.sitkFloat32) * 0.5  # on the T2W grid already (as after `study register`)
    coarse = sitk.Resample(image, [24, 22, 10], sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
                           [2 * s for s in image.GetSpacing()[:2]] + [image.GetSpacing()[2] * 1.4], image.GetDirection())
    folder = write_case(tmp_path / "registered", {"T2W": image, "ADC": adc, "CET1": coarse})
    shift = sitk.TranslationTransform(3, (1.5, -1.0, 0.0))
    write_transform(shift, folder / "transforms" / "CET1.tfm")  # stored by `study register`
    loaded = load_images(folder)
    images, records, transforms = loaded.images, loaded.registration, loaded.transforms
    assert records["ADC"]["method"] == "already on the T2WI grid"
    assert records["CET1"]["method"] == "stored transform"
    assert list(transforms["CET1"].GetParameters()) == [1.5, -1.0, 0.0]
    stored = sitk.ReadImage(str(folder / "CET1.nii.gz"))  # as read back from the case folder
    expected = sitk.Resample(stored, images["T2W"], shift, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    assert np.array_equal(sitk.GetArrayFromImage(images["CET1"]), sitk.GetArrayFromImage(expected))
    bundle = make_bundle(tmp_path / "bundle")
    assert main(["segment", str(folder), "--out", str(tmp_path / "out"), "--model", str(bundle.path)]) == 0
    written = sitk.ReadTransform(str(tmp_path / "out" / "transforms" / "CET1.tfm"))
    assert list(written.GetParameters()) == [1.5, -1.0, 0.0]
