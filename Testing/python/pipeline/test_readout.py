"""`cervicalai predict`: the readout on a small synthetic case with a hand-built risk model.

The risk model's coefficients are chosen in readout_testdata.py, so the expected Rad_score, DL_score and DLRC
probability follow by hand from features computed independently of the readout code.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from deep_testdata import write_encoder_bundle
from readout_testdata import CROP, DL, SETTINGS, ZSCORE, expected_readout, risk_bundle, training_range

from CervicalAILib.bundles.format import write_bundle
from CervicalAILib.contracts.readout import Readout
from CervicalAILib.contracts.readout_text import summary_text
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.features.radiomic import extract_features
from CervicalAILib.pipeline import predict_case
from CervicalAILib.pipeline.inputs import load_inputs
from CervicalAILib.registration import register_to_t2, write_transform
from CervicalAILib.registration.masks import mask_on_grid
from CervicalAILib.report.content import load_readout
from CervicalAILib.review.record import mark_reviewed
from CervicalAILib.scoring.nomogram import build_nomogram


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small synthetic case (registered transforms on disk), a tiny encoder and a risk model."""
    from CervicalAILib.research.synth import SynthParams, generate_case
    from CervicalAILib.research.synth.writer import write_case_folder

    root = tmp_path_factory.mktemp("readout")
    case = generate_case(3, seed=11, params=SynthParams(matrix_scale=0.4))
    case_dir = write_case_folder(case, root / "case")
    images = {role: sitk.ReadImage(str(case_dir / f"{role}.nii.gz")) for role in ("T2W", "ADC", "DWI", "CET1")}
    _, results = register_to_t2(images)
    for role, result in results.items():
        write_transform(result.transform, root / "reg" / "transforms" / f"{role}.tfm")
    models = root / "models"
    encoder, _, _ = write_encoder_bundle(models / "tiny", CROP, ZSCORE, dim=4, name="tiny", seed=5)
    risk = risk_bundle(models / "lnm", encoder)
    mask_path = case_dir / "labels" / "tumor.nii.gz"
    return {"root": root, "case": case_dir, "images": images, "transforms": {r: x.transform for r, x in results.items()},
            "encoder": encoder, "risk": risk, "models": models, "mask": mask_path, "clinical": dict(case.clinical)}


@pytest.fixture(autouse=True)
def _models_dir(world, monkeypatch):
    monkeypatch.setenv("CERVICALAI_MODELS", str(world["models"]))


def test_readout_values_equal_an_independent_computation(world, tmp_path):
    clinical = {"age": 48, "ln_short_axis_mm": 11.0, "ln_long_axis_mm": 13.0, "ln_necrosis": False, "lnm": 1}
    inputs = load_inputs(world["case"], world["mask"], clinical, transforms_dir=world["root"] / "reg")
    readout = predict_case(inputs, out_dir=tmp_path / "out", lnm_bundle=world["risk"].path, use_stage=False)
    rad, deep, rad_score, dl_score, probability = expected_readout(world, c_lnm=1)
    assert readout["features"]["radiomics"] == pytest.approx(rad, rel=1e-12)
    assert readout["features"]["deep"] == pytest.approx({k: deep[k] for k in DL}, rel=1e-6)
    assert readout["rad_score"] == pytest.approx(rad_score, rel=1e-9)
    assert readout["dl_score"] == pytest.approx(dl_score, rel=1e-6)
    assert readout["lnm_probability"] == pytest.approx(probability, rel=1e-6)
    assert readout["nomogram"]["probability"] == pytest.approx(readout["lnm_probability"], abs=1e-9)
    assert set(readout["nomogram"]["points"]) == {"rad_score", "dl_score", "c_lnm"}
    assert readout["clinical"]["c_lnm"] == 1 and "lnm" not in readout["clinical"]  # no pathology truth in a readout
    assert readout["lnm"]["positive"] == (probability >= 0.35)
    assert readout["staging"]["lymph_nodes"]["sra"] is True
    assert readout["inputs"]["mask"]["per_sequence"]["ADC"] == "registration transform"
    assert "registration" not in readout["seconds"]  # the given transforms were used
    assert any("not been marked as reviewed" in w for w in readout["warnings"])
    written = json.loads((tmp_path / "out" / "readout.json").read_text())
    assert written["lnm_probability"] == readout["lnm_probability"]
    assert (tmp_path / "out" / "nomogram.png").stat().st_size > 10_000


def test_reviewed_mask_and_missing_sequence(world, tmp_path):
    case = tmp_path / "case"
    case.mkdir()
    for role in ("T2W", "ADC", "CET1"):  # no DWI: the DL_score and so the DLRC probability are unavailable
        sitk.WriteImage(world["images"][role], str(case / f"{role}.nii.gz"))
    mask_path = tmp_path / "tumor.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(world["mask"])), str(mask_path))
    mark_reviewed(mask_path, "Dr Test")
    inputs = load_inputs(case, mask_path, {"ln_short_axis_mm": 5, "ln_long_axis_mm": 8, "ln_necrosis": False},
                         transforms_dir=world["root"] / "reg")
    readout = predict_case(inputs, lnm_bundle=world["risk"].path, use_stage=False)
    assert readout["review"]["reviewed"] is True and readout["review"]["reviewer"] == "Dr Test"
    assert readout["lnm_probability"] is None and readout["dl_score"] is None
    assert readout["rad_score"] is not None
    assert any("DWI sequence is missing" in w for w in readout["warnings"])
    assert any("DL_score unavailable" in w for w in readout["warnings"])
    assert not any("reviewed" in w for w in readout["warnings"])


def test_the_written_readout_is_its_typed_contract_key_for_key(world, tmp_path):
    """readout.json as `predict` writes it, with the automatic segmentation's record beside the mask (confidence,
    flagged slices, OOD score): read into the typed Readout and written again it is the same file, byte for byte."""
    seg = tmp_path / "seg"
    seg.mkdir()
    mask_path = seg / "tumor.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(world["mask"])), str(mask_path))
    (seg / "segmentation.json").write_text(json.dumps({"tumor_found": True, "confidence": 0.8, "model": {"label": "seg@1"},
                                                       "flagged_slices": [{"slice": 2, "confidence": 0.4}],
                                                       "ood": {"available": True, "score": 1.2, "unusual": True}}))
    clinical = {"age": 48, "ln_short_axis_mm": 11.0, "ln_long_axis_mm": 13.0, "ln_necrosis": False}
    inputs = load_inputs(world["case"], mask_path, clinical, transforms_dir=world["root"] / "reg")
    predict_case(inputs, out_dir=tmp_path / "out", lnm_bundle=world["risk"].path, use_stage=False)
    text = (tmp_path / "out" / "readout.json").read_text()
    _, typed = load_readout(tmp_path / "out")
    assert atomic.to_json(typed.to_dict()) == text
    assert Readout.from_dict(typed.to_dict()) == typed
    written = json.loads(text)
    assert typed.segmentation.flagged_slices[0].slice == 2 and typed.segmentation.ood_score == 1.2
    assert typed.lnm.probability == written["lnm"]["probability"] and typed.models.lnm.name == written["models"]["lnm"]["name"]
    assert typed.inputs.mask.per_sequence == written["inputs"]["mask"]["per_sequence"]


def test_no_cervix_recognised_needs_a_reviewed_contour(world, tmp_path):
    """segment's anatomy gate found no cervix or uterus: an unreviewed mask is refused, a reviewed one scored."""
    seg = tmp_path / "seg"
    seg.mkdir()
    mask_path = seg / "tumor.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(world["mask"])), str(mask_path))
    (seg / "segmentation.json").write_text(json.dumps({"status": "no cervix or uterus recognised", "anatomy_gate": {
        "applied": True, "anatomy_found": False, "message": "no cervix or uterus recognised in this study"}}))
    with pytest.raises(InputError, match="no cervix or uterus recognised in this study.*only a reviewed contour"):
        load_inputs(world["case"], mask_path, {}, transforms_dir=world["root"] / "reg")
    mark_reviewed(mask_path, "Dr Test")
    assert load_inputs(world["case"], mask_path, {}, transforms_dir=world["root"] / "reg").mask_path == mask_path


@pytest.mark.parametrize("score", [1.37, 0.42])
def test_the_segmentation_ood_score_reaches_the_readout(world, tmp_path, score):
    """segment's out-of-distribution score beside the mask: in the readout, and a warning above 1."""
    seg = tmp_path / "seg"
    seg.mkdir()
    mask_path = seg / "tumor.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(world["mask"])), str(mask_path))
    unusual = score > 1
    message = ("the study looks unlike the images this model was trained on: check the contour carefully" if unusual
               else "the study looks like the images this model was trained on")
    (seg / "segmentation.json").write_text(json.dumps({"tumor_found": True, "confidence": 0.8, "model": {"label": "seg@1.1.0"},
                                                       "ood": {"available": True, "score": score, "unusual": unusual,
                                                               "message": message}}))
    mark_reviewed(mask_path, "Dr Test")
    clinical = {"ln_short_axis_mm": 5, "ln_long_axis_mm": 8, "ln_necrosis": False}
    readout = predict_case(load_inputs(world["case"], mask_path, clinical, transforms_dir=world["root"] / "reg"),
                           lnm_bundle=world["risk"].path, use_stage=False)
    assert readout["segmentation"]["ood_score"] == score
    flagged = [w for w in readout["warnings"] if "out-of-distribution score" in w]
    if unusual:
        assert flagged == [f"automatic segmentation: {message} (out-of-distribution score {score:.2f})"]
        assert f"Warning: {flagged[0]}" in summary_text(Readout.from_dict(readout))
    else:
        assert flagged == []


def test_registers_when_no_transform_is_given(world):
    clinical = {"ln_short_axis_mm": 5, "ln_long_axis_mm": 8, "ln_necrosis": True}
    inputs = load_inputs(world["case"], world["mask"], clinical)
    assert inputs.transforms == {}
    readout = predict_case(inputs, lnm_bundle=world["risk"].path, use_stage=False)
    assert readout["seconds"]["registration"] > 0
    # the same registration as `study register` (the DWI takes the ADC's transform): same readout
    given = predict_case(load_inputs(world["case"], world["mask"], clinical, transforms_dir=world["root"] / "reg"),
                         lnm_bundle=world["risk"].path, use_stage=False)
    assert readout["features"]["deep"] == pytest.approx(given["features"]["deep"], rel=1e-9)
    assert readout["lnm_probability"] == pytest.approx(given["lnm_probability"], rel=1e-9)
    assert readout["staging"]["lymph_nodes"]["sra"] is True


def _stage_bundle(path):
    """A second model with other radiomics settings for T2W and its own DWI radiomics."""
    fine = {**SETTINGS, "setting": {**SETTINGS["setting"], "binWidth": 5}}
    names = ["T2W_original_firstorder_Entropy", "DWI_original_firstorder_Mean"]
    terms = [{"name": "rad_score", "label": "Rad_score", "kind": "score", "family": "radiomics", "columns": ["rad_score"]}]
    dlrc = {"terms": terms, "intercept": 0.2, "coefficients": {"rad_score": 1.1}}
    model = {
        "schema": "cervicalai.risk-model/1", "endpoint": "stage_group", "endpoint_column": "stage_group_crt",
        "positive": "chemoradiotherapy group", "negative": "surgery group", "outcome_label": "CRT group",
        "scores": {"rad_score": "radiomics"},
        "families": {"radiomics": {"family": "radiomics", "features": names,
                                   "standardisation": {"mean": [3.0, 500.0], "sd": [1.0, 300.0]},
                                   "coefficients": [0.4, 0.3], "intercept": 0.1}},
        "dlrc": dlrc, "cutoffs": {"dlrc_probability": {"cutoff": 0.5}},
        "training_ranges": {"features": {n: training_range(-1e6, 1e6) for n in names}, "scores": {"rad_score": training_range(-50, 50)},
                            "clinical": {}, "dlrc_linear_predictor": training_range(-50, 50)},
    }
    nomogram = build_nomogram(dlrc, {"rad_score": np.array([-3.0, 3.0])}, outcome_label="CRT group", endpoint="stage_group")
    manifest = {
        "name": "test-stage", "version": "0.1.0", "task": "risk-model", "endpoint": "stage_group",
        "intended_use": "tests only", "training_data": "hand-made coefficients; not for clinical use",
        "inputs": {"sequences": ["T2W", "DWI"], "radiomics_settings": {"T2W": "radiomics/T2W.yaml", "DWI": "radiomics/DWI.yaml"},
                   "encoders": []},
        "outputs": [{"name": "probability"}], "provenance": {"test": True},
        "artefacts": {"model": "model.json", "combat": "combat.json", "nomogram": "nomogram.json"},
    }
    files = {"model.json": json.dumps(model), "combat.json": json.dumps({"applied": False}),
             "nomogram.json": json.dumps(nomogram), "MODEL_CARD.md": "# test stage model\n",
             "radiomics/T2W.yaml": yaml.safe_dump(fine), "radiomics/DWI.yaml": yaml.safe_dump(SETTINGS)}
    return write_bundle(path, manifest, files), fine, names


def test_each_model_uses_its_own_radiomics_settings(world, tmp_path):
    bundle, fine, names = _stage_bundle(tmp_path / "stage")
    inputs = load_inputs(world["case"], world["mask"], {"ln_short_axis_mm": 5, "ln_long_axis_mm": 8, "ln_necrosis": False},
                         transforms_dir=world["root"] / "reg")
    readout = predict_case(inputs, lnm_bundle=world["risk"].path, stage_bundle=bundle.path)
    stage_features = readout["features"]["by_model"]["test-stage@0.1.0"]
    mask = sitk.ReadImage(str(world["mask"]))
    dwi_mask = mask_on_grid(mask, world["images"]["DWI"], world["transforms"]["DWI"])
    expected = {
        **extract_features({"T2W": world["images"]["T2W"]}, mask, settings={"T2W": fine}, features=[names[0]]),
        **extract_features({"DWI": world["images"]["DWI"]}, dwi_mask, settings={"DWI": SETTINGS}, features=[names[1]]),
    }
    assert stage_features == pytest.approx(expected, rel=1e-12)
    coarse = extract_features({"T2W": world["images"]["T2W"]}, mask, settings={"T2W": SETTINGS}, features=[names[0]])
    assert coarse[names[0]] != pytest.approx(expected[names[0]])  # the two settings really differ
    z = (np.array([expected[n] for n in names]) - [3.0, 500.0]) / [1.0, 300.0]
    lp = 0.2 + 1.1 * (0.1 + z @ [0.4, 0.3])
    predicted = readout["staging"]["predicted"]
    assert predicted["stage_group_chemoradiotherapy_probability"] == pytest.approx(1 / (1 + math.exp(-lp)), rel=1e-9)
    assert readout["lnm_probability"] is not None


def _mask_like(reference, fill):
    array = np.zeros(reference.GetSize()[::-1], dtype=np.uint8)
    fill(array)
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(reference)
    return mask


@pytest.mark.parametrize(
    "make_mask, message",
    [
        (lambda t2: _mask_like(t2, lambda a: None), "is empty"),
        (lambda t2: _mask_like(t2, lambda a: a.__setitem__((5, 40, 40), 1)), "only 1 voxel"),
    ],
)
def test_bad_masks(world, tmp_path, make_mask, message):
    path = tmp_path / "mask.nii.gz"
    sitk.WriteImage(make_mask(world["images"]["T2W"]), str(path))
    inputs = load_inputs(world["case"], path, {}, transforms_dir=world["root"] / "reg")
    with pytest.raises(InputError, match=message):
        predict_case(inputs, lnm_bundle=world["risk"].path, use_stage=False)


def test_mask_off_the_image_and_on_another_grid(world, tmp_path):
    mask = sitk.ReadImage(str(world["mask"]))
    moved = sitk.Image(mask)
    moved.SetOrigin(tuple(np.asarray(mask.GetOrigin()) + 5000.0))
    sitk.WriteImage(moved, str(tmp_path / "far.nii.gz"))
    inputs = load_inputs(world["case"], tmp_path / "far.nii.gz", {}, transforms_dir=world["root"] / "reg")
    with pytest.raises(InputError, match="does not overlap the T2WI"):
        predict_case(inputs, lnm_bundle=world["risk"].path, use_stage=False)
    # a mask that reaches past the T2WI's last slice: refused, not silently cut to a smaller tumour
    slices = np.flatnonzero(sitk.GetArrayViewFromImage(mask).any(axis=(1, 2)))
    beyond = mask.GetSize()[2] - (slices[0] + slices[-1]) / 2  # slices to move the tumour's centre past the end
    slice_axis = np.asarray(mask.GetDirection()).reshape(3, 3)[:, 2]
    cut = sitk.Image(mask)
    cut.SetOrigin(tuple(np.asarray(mask.GetOrigin()) + slice_axis * beyond * mask.GetSpacing()[2]))
    sitk.WriteImage(cut, str(tmp_path / "cut.nii.gz"))
    inputs = load_inputs(world["case"], tmp_path / "cut.nii.gz", {}, transforms_dir=world["root"] / "reg")
    with pytest.raises(InputError, match=r"\d+\.\d% of the tumour mask lies outside the T2WI"):
        predict_case(inputs, lnm_bundle=world["risk"].path, use_stage=False)
    coarse = sitk.Resample(mask, world["images"]["CET1"], sitk.Transform(), sitk.sitkNearestNeighbor)
    sitk.WriteImage(coarse, str(tmp_path / "coarse.nii.gz"))
    inputs = load_inputs(world["case"], tmp_path / "coarse.nii.gz", {}, transforms_dir=world["root"] / "reg")
    readout = predict_case(inputs, lnm_bundle=world["risk"].path, use_stage=False)
    assert any("not on the T2WI grid: resampled" in w for w in readout["warnings"])


def test_nan_image_and_bad_clinical_values(world, tmp_path):
    inputs = load_inputs(world["case"], world["mask"], {"ln_short_axis_mm": -3}, transforms_dir=world["root"] / "reg")
    with pytest.raises(InputError, match=r"ln_short_axis_mm=-3 mm is out of range"):
        predict_case(inputs, lnm_bundle=world["risk"].path, use_stage=False)
    inputs = load_inputs(world["case"], world["mask"], {"c_lnm": 0, "ln_short_axis_mm": 12, "ln_long_axis_mm": 14})
    with pytest.raises(InputError, match="c_lnm=0 but ln_short_axis_mm=12"):
        predict_case(inputs, lnm_bundle=world["risk"].path, use_stage=False)
    array = sitk.GetArrayFromImage(world["images"]["ADC"]).astype(np.float32)
    array[3, 10, 10] = np.nan
    nan_image = sitk.GetImageFromArray(array)
    nan_image.CopyInformation(world["images"]["ADC"])
    inputs = load_inputs(world["case"], world["mask"], {}, transforms_dir=world["root"] / "reg")
    inputs.images["ADC"] = nan_image
    with pytest.raises(InputError, match="ADC image contains NaN"):
        predict_case(inputs, lnm_bundle=world["risk"].path, use_stage=False)


def test_tampered_bundle_and_missing_encoder_are_refused(world, tmp_path):
    import shutil

    copy = tmp_path / "lnm"
    shutil.copytree(world["risk"].path, copy)
    (copy / "radiomics" / "ADC.yaml").write_text(yaml.safe_dump({**SETTINGS, "setting": {"binWidth": 1}}))
    inputs = load_inputs(world["case"], world["mask"], {}, transforms_dir=world["root"] / "reg")
    with pytest.raises(BundleError, match="SHA-256 does not match"):
        predict_case(inputs, lnm_bundle=copy, use_stage=False)
    empty = tmp_path / "nomodels"
    empty.mkdir()
    import os

    os.environ["CERVICALAI_MODELS"] = str(empty)
    try:
        with pytest.raises(BundleError, match="encoder test-encoder-tiny@0.0.1 .* was not found"):
            predict_case(inputs, lnm_bundle=world["risk"].path, use_stage=False)
    finally:
        os.environ["CERVICALAI_MODELS"] = str(world["models"])


def test_cli_writes_readout_and_prints_summary(world, tmp_path):
    clinical = tmp_path / "clinical.json"
    clinical.write_text(json.dumps({"age": 50, "ln_short_axis_mm": 6, "ln_long_axis_mm": 9, "ln_necrosis": False, "confined_to_cervix": True}))
    command = [sys.executable, "-m", "CervicalAILib.cli", "predict", str(world["case"]), "--mask", str(world["mask"]),
               "--clinical", str(clinical), "--bundle", str(world["risk"].path), "--no-stage",
               "--transforms", str(world["root"] / "reg"), "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "LNM risk (DLRC)" in result.stdout and "FIGO 2018 size class" in result.stdout
    assert "PROGRESS 1.000 readout done" in result.stderr
    readout = json.loads((tmp_path / "out" / "readout.json").read_text())
    assert 0.0 < readout["lnm_probability"] < 1.0
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--overwrite" in again.stderr  # the first readout is never replaced silently


def test_a_dicom_series_is_recorded_by_its_files(tmp_path):
    """The readout names a DICOM input by its series UID and one SHA-256 over its files' SHA-256s (file-name order)."""
    import hashlib

    from synthetic_dicom import make_series

    from CervicalAILib.core.hashing import sha256_file
    from CervicalAILib.pipeline.inputs import image_record
    from CervicalAILib.study.load import load_study

    series = make_series(tmp_path / "study" / "t2", n_slices=5)
    record = image_record(load_study(tmp_path / "study").series_for("T2W"))
    files = sorted(str(f) for f in series.files)
    assert record["source"] == "dicom" and record["n_files"] == 5 and record["series_uid"] == series.series_uid
    assert record["sha256"] == hashlib.sha256("\n".join(sha256_file(f) for f in files).encode()).hexdigest()


@pytest.fixture()
def shipped_like(world, tmp_path, monkeypatch):
    """A models folder laid out as the shipped one: the full LNM model (needs CE-T1WI), the model without
    contrast, and their encoder."""
    import shutil

    models = tmp_path / "models"
    shutil.copytree(world["models"] / "tiny", models / "tiny")
    full = risk_bundle(models / "dlrc-lnm", world["encoder"], name="test-lnm")
    no_contrast = risk_bundle(models / "dlrc-lnm-no-contrast", world["encoder"], name="test-lnm-no-contrast",
                              without_contrast=True)
    monkeypatch.setenv("CERVICALAI_MODELS", str(models))
    return {"full": full, "no_contrast": no_contrast}


def _case_without(world, folder, missing):
    folder.mkdir()
    for role, image in world["images"].items():
        if role != missing:
            sitk.WriteImage(image, str(folder / f"{role}.nii.gz"))
    return folder


def test_a_study_without_contrast_gets_the_lnm_risk_of_the_model_without_contrast(world, tmp_path, shipped_like):
    case = _case_without(world, tmp_path / "case", "CET1")
    inputs = load_inputs(case, world["mask"], {"ln_short_axis_mm": 11.0}, transforms_dir=world["root"] / "reg")
    readout = predict_case(inputs, out_dir=tmp_path / "out", use_stage=False)
    rad, _, rad_score, dl_score, probability = expected_readout(world, c_lnm=1, without_contrast=True)
    assert readout["lnm"]["model"] == "test-lnm-no-contrast@0.1.0"
    assert readout["models"]["lnm"]["name"] == "test-lnm-no-contrast"
    assert "no CE-T1WI" in readout["lnm"]["model_note"] and "test-lnm@0.1.0" in readout["lnm"]["model_note"]
    assert readout["features"]["radiomics"] == pytest.approx(rad, rel=1e-12)
    assert readout["rad_score"] == pytest.approx(rad_score, rel=1e-9)
    assert readout["lnm_probability"] == pytest.approx(probability, rel=1e-6)
    assert not any("CET1" in w for w in readout["warnings"])  # no score of the model used needs it
    printed = summary_text(Readout.from_dict(readout))
    assert "LNM model: test-lnm-no-contrast@0.1.0 (" in printed and "no CE-T1WI" in printed
    load_readout(tmp_path / "out")  # the report's reader accepts it (contract and model figures)


def test_a_study_with_contrast_still_gets_the_full_model(world, tmp_path, shipped_like):
    clinical = {"age": 48, "ln_short_axis_mm": 11.0, "ln_long_axis_mm": 13.0, "ln_necrosis": False}
    inputs = load_inputs(world["case"], world["mask"], clinical, transforms_dir=world["root"] / "reg")
    readout = predict_case(inputs, use_stage=False)
    rad, _, rad_score, _, probability = expected_readout(world, c_lnm=1)
    assert readout["lnm"]["model"] == "test-lnm@0.1.0" and readout["lnm"]["model_note"] is None
    assert readout["features"]["radiomics"] == pytest.approx(rad, rel=1e-12)
    assert readout["rad_score"] == pytest.approx(rad_score, rel=1e-9)
    assert readout["lnm_probability"] == pytest.approx(probability, rel=1e-6)
    # the same values as with the full model given explicitly (the readout before the model without contrast)
    given = predict_case(inputs, lnm_bundle=shipped_like["full"].path, use_stage=False)
    assert given["lnm_probability"] == readout["lnm_probability"] and given["lnm"]["model"] == readout["lnm"]["model"]


def test_a_model_the_user_chose_is_kept_without_contrast(world, tmp_path, shipped_like):
    case = _case_without(world, tmp_path / "case", "CET1")
    inputs = load_inputs(case, world["mask"], {"ln_short_axis_mm": 5.0}, transforms_dir=world["root"] / "reg")
    readout = predict_case(inputs, lnm_bundle=shipped_like["full"].path, use_stage=False)
    assert readout["lnm"]["model"] == "test-lnm@0.1.0" and readout["lnm"]["model_note"] is None
    assert readout["lnm_probability"] is None and any("CET1 sequence is missing" in w for w in readout["warnings"])
