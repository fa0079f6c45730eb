"""The web review app's MRML side on real MRML (slicer-core): loading a worklist case into a
scene, what the reader starts from, reading the reader's tumour back, and that Mark as reviewed
in the browser writes the same review record as the Segment module's Mark as reviewed."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import SimpleITK as sitk
from worklist_testdata import box, image, make_cohort

from CervicalAILib.io.mrml import segmentation_node_from_mask, volume_node_from_image
from CervicalAILib.review.worklist import open_worklist

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (real MRML)")

from CervicalAILib.web import scene as web_scene  # noqa: E402

pytestmark = pytest.mark.mrml
WHEN = dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def cohort(tmp_path):
    return make_cohort(tmp_path / "cohort")


@pytest.fixture
def scene():
    """A scene with the segmentations logic (its converters) and colour tables, as in the web app."""
    scene = slicer.vtkMRMLScene()
    logics = [slicer.vtkMRMLColorLogic(), slicer.vtkSlicerSegmentationsModuleLogic()]
    for logic in logics:
        logic.SetMRMLScene(scene)
    yield scene
    for logic in logics:
        logic.SetMRMLScene(None)


def _replace_tumour(loaded, mask: sitk.Image) -> None:
    """What painting does, without a browser: the working segmentation's tumour becomes `mask`."""
    scene = loaded.tumour.GetScene()
    other = segmentation_node_from_mask(scene, mask, "painted", {1: "painted"})
    segmentation = loaded.tumour.GetSegmentation()
    segmentation.RemoveSegment(loaded.tumour_segment_id)
    segmentation.CopySegmentFromSegmentation(other.GetSegmentation(), other.GetSegmentation().GetNthSegmentID(0))
    scene.RemoveNode(other)


def test_case_loads_with_every_sequence_on_the_t2_grid_and_the_automatic_contour(cohort, scene):
    reader = open_worklist(cohort).reader("Dr A")
    loaded = web_scene.load_case(scene, reader, "C1")
    assert loaded.started_from == "automatic contour"
    assert set(loaded.volumes) == {"T2W", "DWI"}
    dims = [loaded.volumes[role].GetImageData().GetDimensions() for role in ("T2W", "DWI")]
    assert dims[0] == dims[1] == (24, 24, 6)  # the DWI resampled onto the T2WI grid
    assert np.array_equal(sitk.GetArrayFromImage(web_scene.current_mask(loaded)), box(1, 5, 8, 16, 8, 16))
    assert loaded.probability is not None and loaded.organs is None
    assert [f["slice"] for f in loaded.flagged] == [4, 0]
    assert loaded.focus_ras == pytest.approx([-11.5, -11.5, 4.0])  # the largest section: the first of equals
    segment = loaded.tumour.GetSegmentation().GetSegment(loaded.tumour_segment_id)
    assert segment.GetName() == web_scene.TUMOUR_SEGMENT_NAME
    web_scene.unload_case(scene, loaded)
    assert scene.GetNumberOfNodesByClass("vtkMRMLVolumeNode") == 0
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0


def test_reader_resumes_from_the_working_copy_then_the_reviewed_copy(cohort, scene):
    reader = open_worklist(cohort).reader("Dr A")
    loaded = web_scene.load_case(scene, reader, "C1")
    _replace_tumour(loaded, image(box(1, 5, 8, 16, 8, 20)))
    edited = web_scene.current_mask(loaded)
    assert int(sitk.GetArrayViewFromImage(edited).sum()) == 4 * 8 * 12  # the repainted segment counts
    reader.save_working("C1", edited)
    web_scene.unload_case(scene, loaded)
    again = web_scene.load_case(scene, reader, "C1")
    assert again.started_from == "working copy"
    assert np.array_equal(sitk.GetArrayFromImage(web_scene.current_mask(again)), box(1, 5, 8, 16, 8, 20))
    reader.mark_reviewed("C1", web_scene.current_mask(again))
    reader.working_mask_path("C1").unlink()
    web_scene.unload_case(scene, again)
    assert web_scene.load_case(scene, reader, "C1").started_from == "reviewed-1"
    assert web_scene.load_case(scene, reader, "C3").started_from == "empty"


@pytest.mark.parametrize("table_in", ["organs.json", "segmentation.json"])
def test_organs_listed_in_segmentation_json_load_hidden(cohort, scene, table_in):
    import json

    seg = cohort / "C1" / "segmentation"
    organs = np.zeros((6, 24, 24), np.uint8)
    organs[:, 0:4, :] = 2
    organs[:, 20:24, :] = 5
    sitk.WriteImage(image(organs), str(seg / "organs.nii.gz"))
    summary = json.loads((seg / "segmentation.json").read_text())
    if table_in == "organs.json":  # as `cervicalai segment` writes them (segmentation/outputs.py)
        (seg / "organs.json").write_text(json.dumps({"bladder": 2, "rectum": 5}))
        summary["files"] = {"organs": "organs.nii.gz", "organ_labels": "organs.json"}
    else:
        summary["files"] = {"organs": "organs.nii.gz"}
        summary["organ_labels"] = {"2": "bladder", "5": "rectum"}
    (seg / "segmentation.json").write_text(json.dumps(summary))
    loaded = web_scene.load_case(scene, open_worklist(cohort).reader("Dr A"), "C1")
    segmentation = loaded.organs.GetSegmentation()
    names = sorted(segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments()))
    assert names == ["bladder", "rectum"]
    assert loaded.organs.GetDisplayNode().GetVisibility() == 0
    # the organs are context only: the reader's tumour is still the tumour alone
    assert int(sitk.GetArrayViewFromImage(web_scene.current_mask(loaded)).sum()) == 4 * 8 * 8


def test_web_mark_reviewed_writes_the_record_the_segment_module_writes(cohort, scene, tmp_path):
    """The same edit reviewed in the browser (worklist) and in Slicer (CervicalAISegmentLib.review)."""
    from CervicalAIHubLib import scene as N
    from CervicalAIHubLib.segmentation import create_tumour_segmentation, import_segmentation_result
    from CervicalAILib.io.images import read_image
    from CervicalAISegmentLib.review import mark_reviewed as segment_mark_reviewed

    edited = image(box(1, 5, 8, 16, 8, 20))
    # the browser
    reader = open_worklist(cohort).reader("Dr A")
    loaded = web_scene.load_case(scene, reader, "C1")
    _replace_tumour(loaded, edited)
    web_record = reader.mark_reviewed("C1", web_scene.current_mask(loaded), now=WHEN).record
    # Slicer: the case's T2WI and automatic result imported, the reader's draft edited the same way
    desktop = slicer.vtkMRMLScene()
    t2 = volume_node_from_image(desktop, read_image(cohort / "C1" / "T2W.nii.gz"), "T2W")
    result = import_segmentation_result(desktop, cohort / "C1" / "segmentation", t2)
    draft = create_tumour_segmentation(desktop, edited, t2, "draft", N.STATUS_DRAFT)
    draft.SetNodeReferenceID(N.REFERENCE_AUTOMATIC, result.automatic.GetID())
    draft.SetAttribute(N.MODEL, result.automatic.GetAttribute(N.MODEL))
    slicer_record = segment_mark_reviewed(desktop, draft, "Dr A", tmp_path / "slicer_review", now=WHEN).record
    assert web_record.to_dict() == slicer_record.to_dict()  # every field, the mask's SHA-256 included
