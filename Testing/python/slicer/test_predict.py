"""CervicalAIPredict's logic on real MRML (slicer-core wheel): clinical form, line measurements,
predict inputs from the scene, readout text, table node and report folder."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.contracts.clinical import FIELDS, validate_clinical
from CervicalAILib.contracts.readout import Readout
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import load_case
from CervicalAILib.io.mrml import volume_node_from_image
from CervicalAILib.review.record import read_review
from conftest import REPO

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (real MRML)")
vtk = pytest.importorskip("vtk")

from CervicalAIHubLib import scene as N  # noqa: E402
from CervicalAIHubLib.scene import clinical_values_from_json  # noqa: E402
from CervicalAIHubLib.segmentation import import_segmentation_result  # noqa: E402
from CervicalAIPredictLib.form import (  # noqa: E402
    MEASURABLE,
    form_rows,
    line_length_mm,
    measured_text,
    texts_from_values,
    values_from_form,
    values_json,
    write_clinical_json,
)
from CervicalAIPredictLib.inputs import prepare_inputs, review_warning  # noqa: E402
from CervicalAIPredictLib.readout import (  # noqa: E402
    TABLE_COLUMNS,
    fill_table,
    nomogram_path,
    predict_step,
    read_readout,
    readout_rows,
    report_command_available,
    report_folder_for,
    report_step,
    save_report,
    summary_lines,
)
from CervicalAISegmentLib.review import mark_reviewed  # noqa: E402

pytestmark = pytest.mark.mrml


@pytest.fixture
def scene():
    scene = slicer.vtkMRMLScene()
    scene.AddNode(slicer.vtkMRMLSelectionNode())  # length measurements look up their unit here
    return scene


# --- clinical form --------------------------------------------------------------------------------

def test_form_rows_follow_the_engine_fields():
    rows = form_rows()
    assert [row.name for row in rows] == list(FIELDS)
    by_name = {row.name: row for row in rows}
    assert by_name["scc_ag"].label == "SCC-Ag (ng/mL)" and by_name["scc_ag"].placeholder == "0-1000 ng/mL"
    assert by_name["figo_stage"].choices[0] == "" and "IIIC1" in by_name["figo_stage"].choices
    assert by_name["ln_necrosis"].choices == ("", "yes", "no")  # three states: not given is not "no"
    assert {row.name for row in rows if row.measurable} == set(MEASURABLE) == {"ln_short_axis_mm", "ln_long_axis_mm"}


def test_form_values_are_validated_and_empty_means_not_given():
    texts = {
        "age": " 47 ", "figo_stage": "ib2", "histology": "SCC", "scc_ag": "3,4",
        "ln_short_axis_mm": "8.5", "ln_long_axis_mm": "", "ln_necrosis": "no", "confined_to_cervix": "",
    }  # fmt: skip
    values = values_from_form(texts)
    assert values == {
        "age": 47.0, "figo_stage": "IB2", "histology": "SCC", "scc_ag": 3.4,
        "ln_short_axis_mm": 8.5, "ln_long_axis_mm": None, "ln_necrosis": False, "confined_to_cervix": None,
    }  # fmt: skip
    assert texts_from_values(values) == {**{name: "" for name in FIELDS}, "age": "47", "figo_stage": "IB2",
                                         "histology": "SCC", "scc_ag": "3.4", "ln_short_axis_mm": "8.5", "ln_necrosis": "no"}  # fmt: skip
    assert clinical_values_from_json(values_json(values)) == values


@pytest.mark.parametrize(
    "texts, message",
    [
        ({"age": "7"}, r"age=7 years is out of range \[15, 100\] years"),
        ({"scc_ag": "high"}, r"scc_ag='high' is not a number \(ng/mL\)"),
        ({"figo_stage": "IB4"}, r"figo_stage='IB4' is not one of IA1"),
        ({"ln_short_axis_mm": "12", "ln_long_axis_mm": "9"}, "the short axis cannot exceed the long axis"),
        ({"ln_necrosis": "maybe"}, "must be yes/no"),
        ({"weight": "60"}, "unknown clinical field"),
    ],
)
def test_bad_form_values_name_the_field_and_rule(texts, message):
    with pytest.raises(InputError, match=message):
        values_from_form(texts)


def test_required_fields_and_clinical_json(tmp_path):
    with pytest.raises(InputError, match=r"missing: age \(Age\)"):
        values_from_form({"age": ""}, required=("age",))
    values = values_from_form({"age": "60", "ln_necrosis": "yes", "scc_ag": ""})
    path = write_clinical_json(tmp_path / "clinical.json", values)
    written = json.loads(path.read_text())
    assert written == {"age": 60.0, "ln_necrosis": True}  # not-given values are left out, never filled
    assert validate_clinical(written) == written
    generator_style = texts_from_values({"age": 56, "ln_necrosis": 0, "confined_to_cervix": 1, "c_lnm": 0})
    assert generator_style["ln_necrosis"] == "no" and generator_style["confined_to_cervix"] == "yes"


def add_line(scene, a, b, name="line"):
    line = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", name)
    line.AddControlPoint(*a)
    line.AddControlPoint(*b)
    return line


def test_line_length_in_world_millimetres(scene):
    line = add_line(scene, (1.0, 2.0, 3.0), (4.0, 6.0, 15.0))
    assert line_length_mm(line) == 13.0
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    for axis in range(3):
        matrix.SetElement(axis, axis, 2.0)  # e.g. a scaling transform the reader applied
    transform.SetMatrixTransformToParent(matrix)
    line.SetAndObserveTransformNodeID(transform.GetID())
    assert line_length_mm(line) == 26.0
    assert measured_text("ln_long_axis_mm", line) == "26"


def test_bad_measurements_are_refused(scene):
    half = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", "half placed")
    half.AddControlPoint(0.0, 0.0, 0.0)
    with pytest.raises(InputError, match="'half placed' needs both end points placed"):
        line_length_mm(half)
    fiducial = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "points")
    with pytest.raises(InputError, match="expected a markups line"):
        line_length_mm(fiducial)
    long_line = add_line(scene, (0.0, 0.0, 0.0), (0.0, 95.0, 0.0))
    with pytest.raises(InputError, match=r"ln_short_axis_mm=95 mm is out of range \[0, 80\] mm"):
        measured_text("ln_short_axis_mm", long_line)
    with pytest.raises(InputError, match="not measured with a line"):
        measured_text("age", long_line)


# --- readout ---------------------------------------------------------------------------------------

def example_document() -> dict:
    """A readout as docs/readout.md describes it."""
    return {
        "schema": "cervicalai.readout/1",
        "case_id": "SYN1-A-0002",
        "created": "2026-11-22T10:00:00+00:00",
        "tool": {"name": "cervicalai", "version": "0.1.0"},
        "inputs": {"images": {"T2W": {"path": "T2W.nii.gz", "sha256": "ab"}}, "mask": {"path": "tumor.nii.gz", "sha256": "cd", "grid": "T2W"}},
        "review": {"reviewed": True, "origin": "edited", "reviewer": "Dr R", "reviewed_at": "2026-11-22T09:00:00+00:00",
                   "edit_metrics": {"dice": 0.91, "hd95_mm": 2.25, "volume_change_ml": 0.4}},
        "segmentation": {"volume_ml": 12.345, "max_diameter_mm": 34.1, "largest_slice_index": 9, "confidence": 0.82,
                         "automatic_flagged_slices": [{"slice": 3, "confidence": 0.5}]},
        "features": {"radiomics": {"T2W_original_glszm_ZoneEntropy": 5.123456, "ADC_original_firstorder_Median": 812.0},
                     "deep": {"T2W_deep_0007": -0.25}},
        "rad_score": -0.4321, "dl_score": 0.1234,
        "clinical": {"age": 47.0, "ln_short_axis_mm": 8.5, "c_lnm": False},
        "nomogram": {"points": {"Rad_score": 35.5, "DL_score": 60.0, "c_LNM": 0.0}, "total_points": 95.5,
                     "probability": 0.2345, "image": "nomogram.png"},
        "lnm_probability": 0.2345,
        "lnm": {"probability": 0.2345, "cutoff": 0.31, "positive": False, "cutoff_source": "training Youden index"},
        "staging": {
            "measured": {"max_diameter_mm": 34.1, "figo_size_class": "IB2", "size_class_valid": True,
                         "text": "FIGO 2018 size class IB2 (tumour confined to the cervix, as confirmed by the reader)"},
            "lymph_nodes": {"c_lnm": False, "sra": True, "sra_rules": ["short axis >= 8 mm and short/long ratio > 0.8"],
                            "short_long_ratio": 0.85, "note": ""},
            "needs_reader": [],
            "predicted": {"stage_group_chemoradiotherapy_probability": 0.62, "stage_group": "chemoradiotherapy", "cutoff": 0.5,
                          "text": "Predicted probability of the chemoradiotherapy group (IB3/IIA2-IVB): 62% (research model; the stage is set by the clinical team)"},
        },
        "models": {"lnm": {"name": "dlrc-lnm", "version": "1.0.0"}, "encoders": [{"name": "tumor-encoder-resnet2d", "version": "1.0.0"}]},
        "warnings": ["ADC_original_firstorder_Median = 812 is outside the training range 900-2100"],
        "statement": "Research tool; trained on synthetic data; not for clinical use.",
    }  # fmt: skip


def example_readout(document: dict | None = None) -> Readout:
    return Readout.from_dict(document or example_document())


def write_readout(folder, readout=None, nomogram=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "readout.json").write_text(json.dumps(readout or example_document()))
    if nomogram:
        (folder / "nomogram.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder


def test_summary_lines_say_the_probability_against_its_cutoff_and_the_staging():
    lines = summary_lines(example_readout())
    assert lines[0] == "LNM risk (DLRC): 23.4% (below the model's cut-off of 31.0%)"
    assert lines[1].startswith("FIGO 2018 size class IB2")
    assert lines[2] == "Lymph nodes (reader): c_LNM negative; SRA positive (short axis >= 8 mm and short/long ratio > 0.8)"
    assert lines[3].startswith("Predicted probability of the chemoradiotherapy group (IB3/IIA2-IVB): 62%")
    assert "Warning: ADC_original_firstorder_Median = 812 is outside the training range 900-2100" in lines
    missing = {**example_document(), "lnm_probability": None, "lnm": {"probability": None}, "staging": {"lymph_nodes": {"c_lnm": None, "note": "no lymph-node measurement given"}, "needs_reader": ["measure the largest pelvic lymph node"]}}
    lines = summary_lines(example_readout(missing))
    assert lines[0] == "LNM risk (DLRC): not available (see the warnings)"
    assert "Lymph nodes (reader): c_LNM not measured (no lymph-node measurement given)" in lines
    assert "Needs the reader: measure the largest pelvic lymph node" in lines


def test_readout_rows_hold_every_score_point_feature_and_warning():
    rows = readout_rows(example_readout())
    as_dict = {(section, item): (value, unit) for section, item, value, unit in rows}
    assert rows[0] == ("LNM risk", "LNM risk (DLRC)", "0.2345", "")
    assert as_dict[("LNM risk", "Cut-off")] == ("0.31", "")
    assert as_dict[("LNM risk", "At or above cut-off")] == ("no", "")
    assert as_dict[("Scores", "Rad_score")] == ("-0.4321", "")
    assert as_dict[("Nomogram", "DL_score points")] == ("60", "")
    assert as_dict[("Nomogram", "Total points")] == ("95.5", "")
    assert as_dict[("Clinical", "Largest pelvic lymph node, short axis")] == ("8.5", "mm")
    assert as_dict[("Clinical", "c_lnm")] == ("no", "")
    assert as_dict[("Segmentation", "Tumour volume")] == ("12.35", "mL")
    assert as_dict[("Review", "Reviewer")] == ("Dr R", "")
    assert as_dict[("Review", "hd95_mm")] == ("2.25", "mm")
    assert as_dict[("Staging", "FIGO size class")] == ("IB2", "")
    assert as_dict[("Staging", "Predicted stage group")] == ("chemoradiotherapy", "")
    assert as_dict[("Radiomics feature", "T2W_original_glszm_ZoneEntropy")] == ("5.123", "")
    assert as_dict[("Deep feature", "T2W_deep_0007")] == ("-0.25", "")
    assert as_dict[("Model", "LNM: dlrc-lnm@1.0.0")] == ("predicts pelvic lymph-node metastasis", "")
    assert as_dict[("Model", "Encoder: tumor-encoder-resnet2d@1.0.0")] == ("deep tumour features for DL_score", "")
    assert [row for row in rows if row[0] == "Warning"] == [("Warning", "warning", "ADC_original_firstorder_Median = 812 is outside the training range 900-2100", "")]
    assert len(rows) == 37  # 4 LNM + 2 scores + 4 nomogram + 3 clinical + 4 segmentation + 7 review + 7 staging + 3 features + 2 models + 1 warning


def test_fill_table_node_with_the_readout(scene):
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "readout")
    count = fill_table(table, example_readout())
    rows = readout_rows(example_readout())
    assert count == len(rows) == table.GetNumberOfRows()
    assert [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())] == list(TABLE_COLUMNS)
    for index in (0, 10, count - 1):
        assert tuple(table.GetCellText(index, column) for column in range(4)) == rows[index]
    assert table.GetLocked()
    assert table.GetAttribute("CervicalAI.Status") == "readout"
    assert float(table.GetAttribute("CervicalAI.LNMProbability")) == pytest.approx(0.2345)
    # a second readout replaces the content (no rows left over)
    fewer = example_readout({**example_document(), "features": {}, "warnings": []})
    assert fill_table(table, fewer) == table.GetNumberOfRows() == count - 4


def test_read_readout_refuses_what_is_not_a_readout(tmp_path):
    with pytest.raises(InputError, match="no readout.json"):
        read_readout(tmp_path)
    (tmp_path / "readout.json").write_text("{oops")
    with pytest.raises(InputError, match="readout is not valid JSON"):
        read_readout(tmp_path)
    (tmp_path / "readout.json").write_text(json.dumps({"schema": "something/1"}))
    with pytest.raises(InputError, match="not a CervicalAI readout"):
        read_readout(tmp_path)
    folder = write_readout(tmp_path / "ok")
    assert read_readout(folder).case_id == "SYN1-A-0002"
    assert nomogram_path(folder, read_readout(folder)) == folder / "nomogram.png"
    assert nomogram_path(write_readout(tmp_path / "no-image", nomogram=False)) is None


def test_save_report_beside_the_scene_never_over_an_earlier_one(tmp_path):
    readout = write_readout(tmp_path / "work" / "readout")
    (readout / "inputs").mkdir()
    (readout / "inputs" / "clinical.json").write_text("{}")
    scene_dir = tmp_path / "scenes"
    scene_dir.mkdir()
    target = report_folder_for(str(scene_dir / "patient.mrml"), tmp_path / "default", "SYN1/A 0002")
    assert target == scene_dir / "SYN1_A_0002-CervicalAI-readout"
    saved = save_report(readout, target)
    assert sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*")) == ["inputs", "inputs/clinical.json", "nomogram.png", "readout.json"]
    second = report_folder_for(str(scene_dir / "patient.mrml"), tmp_path / "default", "SYN1/A 0002")
    assert second == scene_dir / "SYN1_A_0002-CervicalAI-readout_2"
    assert report_folder_for("", tmp_path / "default", "c").parent == tmp_path / "default"  # unsaved scene
    with pytest.raises(Exception, match="not empty"):
        save_report(readout, saved)
    with pytest.raises(InputError, match="no readout.json"):
        save_report(tmp_path / "work", tmp_path / "x")


def test_predict_and_report_commands(tmp_path):
    for name in ("case", "mask.nii.gz", "clinical.json"):
        (tmp_path / name).write_text("x")
    step = predict_step("/bin/PythonSlicer", tmp_path / "case", tmp_path / "mask.nii.gz", tmp_path / "clinical.json", tmp_path / "out")
    assert step.command == ["/bin/PythonSlicer", "-m", "CervicalAILib.cli", "predict", str(tmp_path / "case"),
                            "--mask", str(tmp_path / "mask.nii.gz"), "--clinical", str(tmp_path / "clinical.json"),
                            "--out", str(tmp_path / "out"), "--device", "cpu"]  # fmt: skip
    full = predict_step("p", tmp_path / "case", tmp_path / "mask.nii.gz", tmp_path / "clinical.json", tmp_path / "o",
                        bundle=tmp_path, transforms=tmp_path / "reg", device="gpu")  # fmt: skip
    assert full.command[-6:] == ["--device", "gpu", "--transforms", str(tmp_path / "reg"), "--bundle", str(tmp_path)]
    with pytest.raises(InputError, match="device must be cpu or gpu"):
        predict_step("p", tmp_path / "case", tmp_path / "mask.nii.gz", tmp_path / "clinical.json", tmp_path / "o", device="tpu")
    with pytest.raises(InputError, match="tumour mask not found"):
        predict_step("p", tmp_path / "case", tmp_path / "missing.nii.gz", tmp_path / "clinical.json", tmp_path / "o")
    assert report_command_available() == (REPO / "CervicalAI" / "CervicalAILib" / "cli" / "report.py").is_file()
    assert report_step("py", tmp_path).command[3:] == ["report", str(tmp_path), "--out", str(tmp_path / "report.html"), "--pdf"]


# --- predict inputs from the scene -------------------------------------------------------------------

def make_segmented_scene(scene, tmp_path):
    """A T2WI and an ADC in the scene, a co-registered case folder, and an imported automatic result."""
    rng = np.random.default_rng(3)
    t2_image = sitk.GetImageFromArray(rng.integers(0, 500, (10, 32, 36)).astype(np.int16))
    t2_image.SetSpacing((0.8, 0.8, 4.0))
    t2_image.SetOrigin((10.0, -5.0, 2.0))
    adc_image = sitk.GetImageFromArray(rng.integers(0, 2000, (8, 16, 16)).astype(np.int16))
    adc_image.SetSpacing((2.0, 2.0, 5.0))
    t2 = volume_node_from_image(scene, t2_image, "T2")
    adc = volume_node_from_image(scene, adc_image, "ADC")
    from CervicalAIHubLib.volumes import export_case_folder

    case = export_case_folder({"T2W": t2, "ADC": adc}, tmp_path / "case")
    mask = np.zeros((10, 32, 36), np.uint8)
    mask[3:7, 10:20, 12:24] = 1
    mask_image = sitk.GetImageFromArray(mask)
    mask_image.CopyInformation(t2_image)
    result_dir = tmp_path / "segmentation"
    result_dir.mkdir()
    sitk.WriteImage(mask_image, str(result_dir / "tumor.nii.gz"))
    (result_dir / "segmentation.json").write_text(json.dumps({"flagged_slices": [], "model": {"label": "m@1"}, "confidence": 0.9}))
    result = import_segmentation_result(scene, result_dir, t2, {"ADC": adc}, case_folder=case)
    return t2, adc, case, mask, result


def test_prepare_inputs_from_a_reviewed_segmentation(scene, tmp_path):
    t2, adc, case, mask, result = make_segmented_scene(scene, tmp_path)
    review = mark_reviewed(scene, result.draft, "Dr R", tmp_path / "review")
    assert review_warning(review.reviewed) is None
    registered = tmp_path / "registered"
    (registered / "transforms").mkdir(parents=True)
    (registered / "transforms" / "ADC.tfm").write_text("#Insight Transform File V1.0\n")
    review.reviewed.SetAttribute(N.TRANSFORMS_FOLDER, str(registered))
    inputs = prepare_inputs(review.reviewed, tmp_path / "work", {"age": 50.0, "ln_necrosis": None})
    assert inputs.reviewed and inputs.warnings == []
    assert inputs.case_folder == case  # the case folder of the segmentation run
    assert inputs.transforms_folder == registered  # and its registration
    assert json.loads((inputs.mask_path.parent / "segmentation.json").read_text())["confidence"] == 0.9  # confidence for the readout
    assert read_review(inputs.mask_path).reviewed and read_review(inputs.mask_path).reviewer == "Dr R"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(inputs.mask_path))), mask)
    assert json.loads(inputs.clinical_path.read_text()) == {"age": 50.0}


def test_prepare_inputs_warns_for_an_unreviewed_mask_and_rebuilds_a_lost_case(scene, tmp_path):
    t2, adc, case, mask, result = make_segmented_scene(scene, tmp_path)
    result.draft.SetAttribute(N.CASE_FOLDER, str(tmp_path / "cleared-temp-folder"))
    inputs = prepare_inputs(result.draft, tmp_path / "work", {})
    assert not inputs.reviewed and not read_review(inputs.mask_path).reviewed
    assert "has not been reviewed" in inputs.warnings[0]
    assert "is gone: the volumes were exported again" in inputs.warnings[1]
    assert inputs.case_folder == tmp_path / "work" / "case" and inputs.transforms_folder is None
    assert load_case(inputs.case_folder).roles == ["T2W", "ADC"]


def test_prepare_inputs_for_a_segmentation_made_elsewhere(scene, tmp_path):
    t2, adc, case, mask, result = make_segmented_scene(scene, tmp_path)
    from CervicalAILib.io.mrml import segmentation_node_from_mask

    mask_image = sitk.GetImageFromArray(mask)
    mask_image.CopyInformation(N.grid_image(t2))
    plain = segmentation_node_from_mask(scene, mask_image, "from another tool")  # no CervicalAI attributes
    with pytest.raises(InputError, match="does not reference a T2WI: select one"):
        prepare_inputs(plain, tmp_path / "w1", {})
    inputs = prepare_inputs(plain, tmp_path / "w2", {}, t2_node=t2)
    assert "was not made or reviewed with CervicalAI" in inputs.warnings[0]
    assert load_case(inputs.case_folder).roles == ["T2W"]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(inputs.mask_path))), mask)
    with pytest.raises(InputError, match="select the"):
        prepare_inputs(None, tmp_path / "w3", {})


def test_edited_after_review_is_not_reviewed(scene, tmp_path):
    t2, adc, case, mask, result = make_segmented_scene(scene, tmp_path)
    review = mark_reviewed(scene, result.draft, "R", tmp_path / "review")
    review.reviewed.GetSegmentation().GetNthSegment(0).RemoveAllRepresentations()  # contents changed by hand
    review.reviewed.GetSegmentation().CreateRepresentation("Binary labelmap")
    warning = review_warning(review.reviewed)
    assert warning is not None and "changed after it was reviewed" in warning


def replace_tumour(node, mask: sitk.Image, t2) -> None:
    """Set a segmentation's tumour to `mask` (T2WI grid), as a reader's edits would."""
    from vtk.util import numpy_support

    array = np.ascontiguousarray(sitk.GetArrayFromImage(mask).astype(np.uint8))
    oriented = slicer.vtkOrientedImageData()
    oriented.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    oriented.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR))
    matrix = vtk.vtkMatrix4x4()
    for row, values in enumerate(N.world_ijk_to_ras(t2)):
        for column, value in enumerate(values):
            matrix.SetElement(row, column, value)
    oriented.SetImageToWorldMatrix(matrix)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    assert logic.SetBinaryLabelmapToSegment(oriented, node, node.GetSegmentation().GetNthSegmentID(0), logic.MODE_REPLACE)


def test_compute_end_to_end_gives_the_engines_readout(scene, tmp_path, monkeypatch):
    """Scene -> Apply's co-registration in the background -> result nodes -> edited and reviewed
    segmentation -> the predict inputs from the scene -> `cervicalai predict` in a background process. A hand-built
    risk model (coefficients chosen in readout_testdata) makes the LNM probability computable by
    hand from independently extracted features: the module's wiring (mask export, case folder,
    registration reused) must give exactly the engine's answer."""
    from deep_testdata import write_encoder_bundle
    from readout_testdata import CROP, ZSCORE, expected_readout, risk_bundle

    from CervicalAIHubLib.runner import new_work_folder
    from CervicalAIHubLib.volumes import export_case_folder
    from CervicalAILib.core.background import BackgroundRun, engine_environment
    from CervicalAILib.io.case import read_transforms
    from CervicalAILib.research.synth import SynthParams, generate_case
    from CervicalAISegmentLib.pipeline import segmentation_job

    models = tmp_path / "models"
    encoder, _, _ = write_encoder_bundle(models / "tiny", CROP, ZSCORE, dim=4, name="tiny", seed=5)
    risk = risk_bundle(models / "lnm", encoder)
    monkeypatch.setenv("CERVICALAI_MODELS", str(models))
    case = generate_case(3, seed=11, params=SynthParams(matrix_scale=0.4))
    roles = {role: volume_node_from_image(scene, case.images[role], f"{case.case_id} {role}") for role in ("T2W", "ADC", "DWI", "CET1")}

    work = new_work_folder(tmp_path, "apply")
    export_case_folder(roles, work / "input", compress=False)
    job = segmentation_job(sys.executable, work, "cpu")
    run = BackgroundRun(job.steps[:1], env=engine_environment()).start()  # Apply's co-registration step
    assert run.wait(timeout=600).status == "succeeded", run.error_message()
    truth = sitk.Cast(case.labels["tumor"] > 0, sitk.sitkUInt8)
    job.result.mkdir()  # the network's output, here the generator's truth (segmentation is tested elsewhere)
    sitk.WriteImage(truth, str(job.result / "tumor.nii.gz"))
    (job.result / "segmentation.json").write_text(json.dumps({"flagged_slices": [], "model": {"label": "truth@1"}, "confidence": 0.77}))
    result = import_segmentation_result(scene, job.result, roles["T2W"], roles, case_folder=job.input_case, transforms_folder=job.case)
    edited = sitk.GetArrayFromImage(truth)
    edited[int(np.argmax(edited.sum(axis=(1, 2))))] = 0  # the reader removes the contour on one slice
    edited_mask = sitk.GetImageFromArray(edited)
    edited_mask.CopyInformation(truth)
    replace_tumour(result.draft, edited_mask, roles["T2W"])
    review = mark_reviewed(scene, result.draft, "Dr Test", tmp_path / "review")

    clinical = {"age": "50", "ln_short_axis_mm": "11", "ln_long_axis_mm": "14", "ln_necrosis": "no", "confined_to_cervix": "yes"}
    inputs = prepare_inputs(review.reviewed, tmp_path / "readout-work", values_from_form(clinical))
    assert inputs.reviewed and inputs.transforms_folder == job.case
    step = predict_step(sys.executable, inputs.case_folder, inputs.mask_path, inputs.clinical_path, tmp_path / "readout",
                        bundle=risk.path, transforms=inputs.transforms_folder)  # fmt: skip
    run = BackgroundRun([step], env=engine_environment()).start()
    state = run.wait(timeout=600)
    assert state.status == "succeeded", run.error_message()

    readout = read_readout(tmp_path / "readout")
    world = {"mask": inputs.mask_path, "images": {r: load_case(inputs.case_folder).image(r) for r in roles},
             "transforms": read_transforms(job.case), "encoder": encoder}  # fmt: skip
    _, _, rad_score, dl_score, probability = expected_readout(world, c_lnm=1)  # short axis 11 mm: c_LNM positive
    assert readout.rad_score == pytest.approx(rad_score, rel=1e-6)
    assert readout.dl_score == pytest.approx(dl_score, rel=1e-6)
    assert readout.lnm_probability == pytest.approx(probability, rel=1e-6)
    assert readout.review.reviewed is True and readout.review.reviewer == "Dr Test"
    assert readout.review.origin == "edited"
    assert readout.segmentation.confidence == 0.77  # the run's summary travelled with the mask
    rows = {(section, item): value for section, item, value, _ in readout_rows(readout)}
    assert rows[("Segmentation", "Segmentation confidence")] == "0.77"
    assert rows[("Segmentation", "Segmentation model")] == "truth@1"
    table = scene.AddNewNodeByClass("vtkMRMLTableNode")
    assert fill_table(table, readout) == len(readout_rows(readout)) > 15
    assert table.GetCellText(0, 2) == f"{probability:.4g}"
    assert nomogram_path(tmp_path / "readout", readout) is not None


def test_centre_is_a_free_text_row_of_the_form():
    from CervicalAIPredictLib.form import form_rows, texts_from_values, values_from_form

    row = next(r for r in form_rows() if r.name == "center")
    assert row.kind == "text"
    assert values_from_form({"center": " B "}) == {"center": "B"}
    assert texts_from_values({"center": "C"})["center"] == "C"
