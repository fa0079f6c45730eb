"""The hub's worklist panel logic (no Qt, no MRML): table rows, next case, what to load, writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from worklist_testdata import box, image, make_cohort

from CervicalAIHubLib.worklist_panel import WorklistPanel
from CervicalAILib.core.errors import InputError
from CervicalAILib.review.worklist import REVIEW_DIR, open_worklist


@pytest.fixture
def cohort(tmp_path):
    return make_cohort(tmp_path / "cohort")


def test_rows_progress_and_order(cohort):
    panel = WorklistPanel(cohort, "Dr Slicer")
    assert [(r.case_id, r.status) for r in panel.rows()] == [("C1", "not started"), ("C2", "not started"),
                                                             ("C3", "not started")]
    assert panel.next_case() == "C1" and panel.previous_case("C1") == "C3"
    loaded = panel.case_to_load("C1")
    assert loaded.started_from == "automatic contour" and loaded.start_mask is None  # import the result as it is
    assert set(loaded.images) == {"T2W", "DWI"} and loaded.segmentation == cohort / "C1" / "segmentation"
    assert panel.rows()[0].status == "in progress"
    text = panel.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 20)), rating=2, comment="wider")
    assert text.startswith("C1: reviewed by Dr Slicer (reviewed-1); Dice 0.800")
    assert panel.rows()[0] == panel.rows()[0].__class__("C1", "reviewed", "reviewed", "2")
    assert panel.progress_text() == "1 of 3 reviewed by Dr Slicer"
    assert panel.next_case("C1") == "C2"
    assert panel.skip("C2", "no DWI") == "C2: skipped (no DWI)"
    assert panel.next_case("C1") == "C3"
    loaded = panel.case_to_load("C3")
    assert loaded.segmentation is None and loaded.started_from == "empty" and loaded.notes


def test_the_panel_and_the_browser_share_one_worklist(cohort):
    """A case reviewed in the browser shows as reviewed in Slicer, and the reader resumes the browser's work."""
    browser_reader = open_worklist(cohort).reader("Dr Slicer")
    browser_reader.save_working("C2", image(box(1, 5, 8, 16, 8, 12)))
    browser_reader.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16)), rating=1)
    panel = WorklistPanel(cohort, "Dr Slicer")
    assert [r.status for r in panel.rows()] == ["reviewed", "in progress", "not started"]
    loaded = panel.case_to_load("C2")
    assert loaded.start_mask == cohort / REVIEW_DIR / "dr_slicer" / "C2" / "working" / "tumor.nii.gz"
    assert loaded.started_from == "working copy"
    reviewed = panel.case_to_load("C1")
    assert reviewed.started_from == "reviewed-1" and reviewed.rating == 1
    record = json.loads((cohort / REVIEW_DIR / "dr_slicer" / "C1" / "reviewed-1" / "tumor.nii.gz.review.json").read_text())
    assert record["reviewer"] == "Dr Slicer"


def test_the_panel_refuses_bad_input(cohort):
    with pytest.raises(InputError, match="cohort"):
        WorklistPanel("", "Dr A")
    with pytest.raises(InputError, match="reader name"):
        WorklistPanel(cohort, "")
    panel = WorklistPanel(cohort, "Dr A")
    with pytest.raises(InputError, match="not in the worklist"):
        panel.case_to_load("../C1")
    with pytest.raises(InputError, match="contour is empty"):
        panel.mark_reviewed("C1", image(np.zeros((6, 24, 24), np.uint8)))
    assert [value for value, _ in WorklistPanel.rating_choices()] == [None, 1, 2, 3, 4, 5]


@pytest.mark.mrml
def test_a_worklist_case_in_the_segment_module_resumes_the_browsers_working_copy(cohort):
    slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (real MRML)")
    import SimpleITK as sitk

    from CervicalAIHubLib import scene as N
    from CervicalAIHubLib import worklist_scene
    from CervicalAILib.io.images import read_image
    from CervicalAILib.io.mrml import volume_node_from_image

    open_worklist(cohort).reader("Dr A").save_working("C1", image(box(1, 5, 8, 16, 8, 12)))
    panel = WorklistPanel(cohort, "Dr A")
    to_load = panel.case_to_load("C1")
    scene = slicer.vtkMRMLScene()
    roles = {role: volume_node_from_image(scene, read_image(path), f"C1 {role}") for role, path in to_load.images.items()}
    draft = worklist_scene.load_case(scene, to_load, roles)
    assert N.status_of(draft) == N.STATUS_DRAFT and "working copy" in draft.GetName()
    assert draft.GetNodeReference(N.REFERENCE_AUTOMATIC) is not None  # edits are measured against the automatic contour
    mask = worklist_scene.reader_mask(draft)
    assert np.array_equal(sitk.GetArrayFromImage(mask), box(1, 5, 8, 16, 8, 12))
    text = panel.mark_reviewed("C1", mask, rating=3)
    assert "Dice 0.667" in text  # 2 * 128 / (256 + 128)
    # a case without an automatic contour gets an empty draft to draw in
    to_load = panel.case_to_load("C3")
    roles = {role: volume_node_from_image(scene, read_image(path), f"C3 {role}") for role, path in to_load.images.items()}
    empty = worklist_scene.load_case(scene, to_load, roles)
    assert not sitk.GetArrayViewFromImage(worklist_scene.reader_mask(empty)).any()
