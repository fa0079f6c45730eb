"""The Segment module's MRML logic on real MRML (slicer-core wheel), with the CervicalAIHubLib parts it builds
on: result import, terminology, flagged-slice positions, review with edit metrics and review state, the
never-overwrite rule, the Apply commands. Volume roles: test_hub_volumes.py."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_testdata import make_t2, new_scene, rotation

from CervicalAILib.contracts.review import record_path
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.io import measurements as measure
from CervicalAILib.io.case import load_case
from CervicalAILib.io.mrml import volume_node_from_image
from CervicalAILib.review.record import read_review
from conftest import REPO

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (real MRML)")
vtk = pytest.importorskip("vtk")

from CervicalAIHubLib import scene as N  # noqa: E402
from CervicalAIHubLib.reviewed import export_reviewed_case, export_tumour_mask, review_state  # noqa: E402
from CervicalAIHubLib.runner import new_work_folder  # noqa: E402
from CervicalAIHubLib.scene import EDITED_AFTER_REVIEW, segmentations_of  # noqa: E402
from CervicalAIHubLib.segmentation import (  # noqa: E402
    TUMOUR_TERMINOLOGY,
    flagged_from_node,
    import_segmentation_result,
    segment_terminology,
    set_segment_terminology,
    tumour_mask,
)
from CervicalAIHubLib.volumes import (  # noqa: E402
    candidate_volumes,
    export_case_folder,
)
from CervicalAISegmentLib.pipeline import segmentation_job  # noqa: E402
from CervicalAISegmentLib.review import mark_reviewed, new_working_copy  # noqa: E402

pytestmark = pytest.mark.mrml

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@pytest.fixture
def scene():
    yield from new_scene()


def box_mask(reference: sitk.Image, box=(slice(4, 9), slice(12, 26), slice(10, 30))) -> sitk.Image:
    array = np.zeros(tuple(reversed(reference.GetSize())), np.uint8)
    array[box] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(reference)
    return mask


def write_result(folder, mask: sitk.Image, flagged=(), probability=None, **summary) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(mask, str(folder / "tumor.nii.gz"), True)
    if probability is None:
        probability = sitk.Cast(mask * 230, sitk.sitkUInt8)
    sitk.WriteImage(probability, str(folder / "tumor_probability.nii.gz"), True)
    data = {
        "tumor_found": True, "volume_ml": measure.volume_ml(mask), "max_diameter_mm": 30.0, "confidence": 0.81,
        "flagged_slices": [{"slice": k, "confidence": c} for k, c in flagged],
        "model": {"label": "cervix-tumor-seg-mpmri@1.0.0"}, "device": {"provider": "CPUExecutionProvider"},
        "warnings": ["synthetic warning"], **summary,
    }  # fmt: skip
    (folder / "segmentation.json").write_text(json.dumps(data))


@pytest.fixture
def imported(scene, tmp_path):
    """An oblique T2WI in the scene with an imported automatic result (flagged slices 6 and 1)."""
    t2_image = make_t2(rotation([0.2, 1.0, 0.3], 14.0))
    t2 = volume_node_from_image(scene, t2_image, "T2 TSE AX")
    mask = box_mask(t2_image)
    probability = sitk.Cast(mask * 230, sitk.sitkUInt8)
    parray = sitk.GetArrayFromImage(probability)
    parray[1, 30:34, 5:9] = 60  # an uncertain spot on slice 1, where the mask is empty
    probability = sitk.GetImageFromArray(parray)
    probability.CopyInformation(mask)
    write_result(tmp_path / "segmentation", mask, [(6, 0.42), (1, 0.55), (12, 0.7)], probability)
    result = import_segmentation_result(scene, tmp_path / "segmentation", t2, {"ADC": None}, case_folder=tmp_path)
    return t2, t2_image, mask, result


# --- terminology --------------------------------------------------------------------------------

def test_tumour_terminology_is_a_valid_slicer_entry_with_snomed_codes():
    logic = slicer.vtkSlicerTerminologiesModuleLogic
    entry = slicer.vtkSlicerTerminologyEntry()
    assert logic.DeserializeTerminologyEntry(TUMOUR_TERMINOLOGY, entry)
    assert (entry.GetCategoryObject().GetCodingSchemeDesignator(), entry.GetCategoryObject().GetCodeValue()) == ("SCT", "49755003")
    assert (entry.GetTypeObject().GetCodeValue(), entry.GetTypeObject().GetCodeMeaning()) == ("86049000", "Neoplasm, Primary")
    region = entry.GetRegionObject() if hasattr(entry, "GetRegionObject") else entry.GetAnatomicRegionObject()
    assert (region.GetCodingSchemeDesignator(), region.GetCodeValue(), region.GetCodeMeaning()) == ("SCT", "71252005", "Cervix uteri")
    assert logic.SerializeTerminologyEntry(entry) == TUMOUR_TERMINOLOGY  # Slicer's own writer gives the same string


def test_terminology_is_stored_in_the_tag_every_slicer_reads():
    """SetTerminology/GetTerminology exist from Slicer 5.10 only; the tag they wrap exists in every
    version. Written through the tag, read back through both."""
    segment = slicer.vtkSegment()
    set_segment_terminology(segment, TUMOUR_TERMINOLOGY)
    assert segment_terminology(segment) == TUMOUR_TERMINOLOGY
    assert segment.GetTerminology() == TUMOUR_TERMINOLOGY  # the 5.10+ accessor sees the same entry
    other = slicer.vtkSegment()
    other.SetTerminology("Segmentation category and type - 3D Slicer General Anatomy list~SCT^85756007^Tissue~SCT^85756007^Tissue~^^~Anatomic codes - DICOM master list~^^~^^")
    assert segment_terminology(other).endswith("SCT^85756007^Tissue~^^~Anatomic codes - DICOM master list~^^~^^")


# --- importing a result ----------------------------------------------------------------------------

def test_import_creates_frozen_automatic_draft_and_probability_on_the_t2_grid(scene, imported, tmp_path):
    t2, t2_image, mask, result = imported
    assert result.automatic.GetName() == "T2 TSE AX tumour (automatic)"
    assert result.draft.GetName() == "T2 TSE AX tumour (review)"
    assert N.status_of(result.automatic) == N.STATUS_AUTOMATIC and N.status_of(result.draft) == N.STATUS_DRAFT
    assert not result.automatic.GetDisplayNode().GetVisibility()
    assert result.draft.GetNodeReference(N.REFERENCE_AUTOMATIC) is result.automatic
    for node in (result.automatic, result.draft):
        segmentation = node.GetSegmentation()
        assert segmentation.GetNumberOfSegments() == 1
        segment = segmentation.GetNthSegment(0)
        assert segment_terminology(segment) == TUMOUR_TERMINOLOGY and segment.GetName() == "Cervical tumour"
        assert node.GetNodeReference(N.REFERENCE_ROLE["T2W"]) is t2
        assert node.GetAttribute(N.MODEL) == "cervix-tumor-seg-mpmri@1.0.0"
        assert node.GetAttribute(N.CASE_FOLDER) == str(tmp_path.resolve())
        # the reference geometry is the T2WI's grid (what the Segment Editor paints on)
        again = tumour_mask(node)
        assert again.GetSize() == t2_image.GetSize()
        np.testing.assert_allclose(again.GetOrigin(), t2_image.GetOrigin(), atol=1e-6)
        np.testing.assert_allclose(again.GetDirection(), t2_image.GetDirection(), atol=1e-9)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(mask))
    probability = slicer.util.arrayFromVolume(result.probability)
    assert probability.dtype == np.float32
    assert probability.min() >= 0.0 and probability.max() <= 1.0
    assert probability.max() == pytest.approx(230 / 255)
    assert N.status_of(result.probability) == N.STATUS_PROBABILITY
    assert result.warnings == ["synthetic warning"]
    assert result.probability not in candidate_volumes(scene)  # an output is never offered as an input


def test_results_are_placed_in_the_t2_study_folder(scene, tmp_path):
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Patient 1")
    study = hierarchy.CreateStudyItem(patient, "MR pelvis")
    t2_image = make_t2()
    t2 = volume_node_from_image(scene, t2_image, "T2")
    hierarchy.CreateItem(study, t2)  # as the DICOM module files a loaded series
    write_result(tmp_path / "seg", box_mask(t2_image))
    result = import_segmentation_result(scene, tmp_path / "seg", t2)
    for node in (result.automatic, result.draft, result.probability):
        assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == study


def ras_of_index(image: sitk.Image, index) -> np.ndarray:
    """Independent reference: SimpleITK's index -> LPS point, flipped to RAS."""
    return LPS_TO_RAS @ np.array(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in index]))


def test_flagged_slices_point_at_the_tumour_centre_in_world_ras(imported):
    t2, t2_image, mask, result = imported
    flagged = {item.slice: item for item in result.flagged}
    assert [item.slice for item in result.flagged] == [6, 1, 12]  # worst first, as the engine listed them
    assert flagged[6].confidence == pytest.approx(0.42)
    # slice 6 holds the box: its centre (i 19.5, j 18.5)
    np.testing.assert_allclose(flagged[6].ras, ras_of_index(t2_image, (19.5, 18.5, 6)), atol=1e-6)
    # slice 1 has no mask: the centre of the uncertain probability spot (i 6.5, j 31.5)
    np.testing.assert_allclose(flagged[1].ras, ras_of_index(t2_image, (6.5, 31.5, 1)), atol=1e-6)
    # slice 12 has neither: the slice centre
    np.testing.assert_allclose(flagged[12].ras, ras_of_index(t2_image, (23.5, 19.5, 12)), atol=1e-6)
    assert flagged[6].label == "slice 7: confidence 0.42"
    # kept on the nodes (survives a module reload or a saved scene)
    restored = flagged_from_node(result.draft)
    assert [(f.slice, f.confidence) for f in restored] == [(6, 0.42), (1, 0.55), (12, 0.7)]
    np.testing.assert_allclose(restored[0].ras, flagged[6].ras)


def test_flagged_slice_follows_a_linear_parent_transform(scene, imported):
    t2, t2_image, mask, result = imported
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 12.5)
    matrix.SetElement(2, 3, -4.0)
    transform.SetMatrixTransformToParent(matrix)
    t2.SetAndObserveTransformNodeID(transform.GetID())
    point = N.slice_center_ras(t2, 6, sitk.GetArrayFromImage(mask)[6])
    np.testing.assert_allclose(point, ras_of_index(t2_image, (19.5, 18.5, 6)) + [12.5, 0.0, -4.0], atol=1e-6)
    with pytest.raises(InputError, match="slice 14 is outside"):
        N.slice_center_ras(t2, 14)


def test_bad_results_are_refused_with_the_file_named(scene, tmp_path):
    t2_image = make_t2()
    t2 = volume_node_from_image(scene, t2_image, "T2")
    with pytest.raises(InputError, match="no tumor.nii.gz"):
        import_segmentation_result(scene, tmp_path / "empty", t2)
    other = make_t2(size=(30, 30, 10))
    write_result(tmp_path / "wrong", box_mask(other, (slice(2, 4), slice(2, 6), slice(2, 6))))
    with pytest.raises(InputError, match="not on the grid of T2WI volume 'T2'") as error:
        import_segmentation_result(scene, tmp_path / "wrong", t2)
    assert "tumor.nii.gz" in str(error.value)
    write_result(tmp_path / "badjson", box_mask(t2_image))
    (tmp_path / "badjson" / "segmentation.json").write_text("{not json")
    with pytest.raises(InputError, match="segmentation summary is not valid JSON"):
        import_segmentation_result(scene, tmp_path / "badjson", t2)
    write_result(tmp_path / "outside", box_mask(t2_image), [(40, 0.3)])
    with pytest.raises(InputError, match="flagged slice 40 is outside the T2WI"):
        import_segmentation_result(scene, tmp_path / "outside", t2)


# --- review ------------------------------------------------------------------------------------------

def edit_draft(draft, t2, remove_slice=6, add_box=None):
    """Change the draft's tumour as a reader would in the Segment Editor (replace its labelmap)."""
    from vtk.util import numpy_support

    array = sitk.GetArrayFromImage(tumour_mask(draft, N.grid_image(t2)))
    array[remove_slice] = 0
    if add_box is not None:
        array[add_box] = 1
    oriented = slicer.vtkOrientedImageData()
    oriented.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    oriented.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR))
    matrix = vtk.vtkMatrix4x4()
    for row, values in enumerate(N.world_ijk_to_ras(t2)):
        for column, value in enumerate(values):
            matrix.SetElement(row, column, value)
    oriented.SetImageToWorldMatrix(matrix)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    segment_id = draft.GetSegmentation().GetNthSegmentID(0)
    assert logic.SetBinaryLabelmapToSegment(oriented, draft, segment_id, logic.MODE_REPLACE)
    return array


def test_mark_reviewed_freezes_a_copy_and_measures_the_edits(scene, imported, tmp_path):
    t2, t2_image, mask, result = imported
    edited = edit_draft(result.draft, t2, add_box=(slice(4, 9), slice(26, 29), slice(10, 30)))
    now = dt.datetime(2026, 11, 22, 9, 30, 12, 999, tzinfo=dt.UTC)
    review = mark_reviewed(scene, result.draft, "  Dr. Ada Reader ", tmp_path / "review", now=now)

    reviewed = review.reviewed
    assert reviewed is not result.draft
    assert reviewed.GetName() == "T2 TSE AX tumour (reviewed by Dr. Ada Reader)"
    assert review_state(reviewed) == N.STATUS_REVIEWED
    assert review_state(result.draft) == N.STATUS_DRAFT  # the working copy stays editable
    assert result.draft.GetNodeReference(N.REFERENCE_LAST_REVIEWED) is reviewed
    assert reviewed.GetNodeReference(N.REFERENCE_AUTOMATIC) is result.automatic
    assert reviewed.GetSegmentation().GetNthSegment(0).GetTerminology() == TUMOUR_TERMINOLOGY

    # expected edit metrics, computed independently from the arrays
    reviewed_mask = sitk.GetImageFromArray(edited.astype(np.uint8))
    reviewed_mask.CopyInformation(t2_image)
    expected = measure.edit_metrics(mask, reviewed_mask)
    assert 0.0 < expected.dice < 1.0
    assert float(reviewed.GetAttribute("CervicalAI.Dice")) == pytest.approx(expected.dice, rel=1e-5)
    assert float(reviewed.GetAttribute("CervicalAI.HD95mm")) == pytest.approx(expected.hd95_mm, rel=1e-4)
    assert float(reviewed.GetAttribute("CervicalAI.VolumeChangeMl")) == pytest.approx(expected.volume_change_ml, rel=1e-3)
    assert float(reviewed.GetAttribute("CervicalAI.VolumeChangePercent")) == pytest.approx(expected.volume_change_percent, rel=1e-3)
    assert reviewed.GetAttribute("CervicalAI.Reviewer") == "Dr. Ada Reader"
    assert reviewed.GetAttribute("CervicalAI.ReviewedAt") == "2026-11-22T09:30:12+00:00"
    assert reviewed.GetAttribute("CervicalAI.Origin") == "edited"
    assert reviewed.GetAttribute("CervicalAI.AlgorithmType") == "SEMIAUTOMATIC"
    assert reviewed.GetAttribute("CervicalAI.AutomaticModel") == "cervix-tumor-seg-mpmri@1.0.0"

    # the files: the mask on the T2WI grid and the engine's review record with its hash
    assert review.mask_path == tmp_path / "review" / "tumor.nii.gz"
    written = sitk.ReadImage(str(review.mask_path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), edited)
    record = read_review(review.mask_path)
    assert record.reviewed and record.reviewer == "Dr. Ada Reader" and record.origin == "edited"
    assert record.mask_sha256 == sha256_file(review.mask_path)
    assert record.edit_metrics.dice == pytest.approx(expected.dice, rel=1e-6)
    assert "Dice" in review.summary() and "Dr. Ada Reader" in review.summary()


def test_unchanged_contour_is_reviewed_as_automatic(scene, imported, tmp_path):
    t2, t2_image, mask, result = imported
    review = mark_reviewed(scene, result.draft, "R", tmp_path / "r")
    # reviewed unchanged: the reader vouches for the contour (MANUAL), the model is still named
    assert review.record.origin == "automatic" and review.record.algorithm_type == "MANUAL"
    assert review.reviewed.GetAttribute("CervicalAI.AlgorithmType") == "MANUAL"
    assert review.record.automatic_model == "cervix-tumor-seg-mpmri@1.0.0"
    assert float(review.reviewed.GetAttribute("CervicalAI.Dice")) == 1.0
    assert float(review.reviewed.GetAttribute("CervicalAI.HD95mm")) == 0.0


def test_an_edit_to_the_reviewed_copy_is_detected(scene, imported, tmp_path):
    t2, _, _, result = imported
    review = mark_reviewed(scene, result.draft, "R", tmp_path / "r")
    assert review_state(review.reviewed) == N.STATUS_REVIEWED
    edit_draft(review.reviewed, t2, remove_slice=5)  # someone paints on the frozen copy by hand
    assert review_state(review.reviewed) == EDITED_AFTER_REVIEW
    mask_path, reviewed = export_tumour_mask(review.reviewed, tmp_path / "export")
    assert not reviewed and not record_path(mask_path).exists()  # exported as unreviewed


def test_review_state_is_hashed_again_only_when_the_mask_can_have_changed(scene, imported, tmp_path, monkeypatch):
    """The widgets ask for the review state on every parameter change (each keystroke of the
    reviewer's name): the content hash is computed once per version of the mask, and any edit
    (a replaced labelmap, an in-place change, a moved T2WI) is still seen."""
    from CervicalAIHubLib import reviewed as review_module

    t2, _, _, result = imported
    review = mark_reviewed(scene, result.draft, "R", tmp_path / "r")
    hashed = []
    original = review_module.mask_sha256
    monkeypatch.setattr(review_module, "mask_sha256", lambda mask: hashed.append(1) or original(mask))
    for _ in range(5):  # five keystrokes
        assert review_state(review.reviewed) == N.STATUS_REVIEWED
    assert len(hashed) == 1
    review.reviewed.SetAttribute("CervicalAI.Note", "unrelated attribute")  # node modified: hashed again, same verdict
    assert review_state(review.reviewed) == N.STATUS_REVIEWED and len(hashed) == 2

    # an in-place edit of the labelmap (as an editor effect does), then Modified()
    segmentation = review.reviewed.GetSegmentation()
    name = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    labelmap = segmentation.GetNthSegment(0).GetRepresentation(name)
    from vtk.util import numpy_support

    voxels = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())
    voxels[np.flatnonzero(voxels)[:5]] = 0
    labelmap.Modified()
    assert review_state(review.reviewed) == EDITED_AFTER_REVIEW and len(hashed) == 3
    assert review_state(review.reviewed) == EDITED_AFTER_REVIEW and len(hashed) == 3

    # moving the T2WI changes the grid the mask is sampled on: checked again
    second = mark_reviewed(scene, result.draft, "R", tmp_path / "r2")
    assert review_state(second.reviewed) == N.STATUS_REVIEWED
    count = len(hashed)
    matrix = vtk.vtkMatrix4x4()
    t2.GetIJKToRASMatrix(matrix)
    matrix.SetElement(0, 3, matrix.GetElement(0, 3) + 5.0)
    t2.SetIJKToRASMatrix(matrix)
    review_state(second.reviewed)
    assert len(hashed) == count + 1


def test_scene_queries_release_the_node_collections(scene, imported):
    """vtkMRMLScene.GetNodesByClass returns a collection the caller owns: each unreleased one holds
    a reference to every node in it, so a closed scene's volumes would never be freed. The Lib's
    queries (workflow state, volume candidates, CervicalAI segmentations) release theirs."""
    from CervicalAIHubLib.workflow import workflow_state

    t2, _, _, result = imported
    before = (t2.GetReferenceCount(), result.draft.GetReferenceCount())
    for _ in range(10):
        workflow_state(scene)
        candidate_volumes(scene)
        segmentations_of(scene)
        N.nodes_by_class(scene, "vtkMRMLNode")
    assert (t2.GetReferenceCount(), result.draft.GetReferenceCount()) == before
    leaked = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")  # the raw call, for comparison
    del leaked
    assert t2.GetReferenceCount() == before[0] + 1  # what every refresh used to leak


def test_review_refusals_name_the_problem(scene, imported, tmp_path):
    t2, _, _, result = imported
    with pytest.raises(InputError, match="reviewer's name"):
        mark_reviewed(scene, result.draft, "  ", tmp_path / "a")
    review = mark_reviewed(scene, result.draft, "R", tmp_path / "b")
    with pytest.raises(InputError, match="already a reviewed copy"):
        mark_reviewed(scene, review.reviewed, "R", tmp_path / "c")
    with pytest.raises(InputError, match="tumor.nii.gz exists"):
        mark_reviewed(scene, result.draft, "R", tmp_path / "b")  # never over another review
    plain = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "hand drawn")
    with pytest.raises(InputError, match="does not reference its T2WI"):
        mark_reviewed(scene, plain, "R", tmp_path / "d")
    assert review_state(plain) == "not a CervicalAI segmentation"


def test_rerunning_the_automatic_segmentation_never_overwrites_a_reviewed_one(scene, imported, tmp_path):
    t2, t2_image, mask, result = imported
    edit_draft(result.draft, t2)
    review = mark_reviewed(scene, result.draft, "R", tmp_path / "review")
    reviewed = review.reviewed
    before_mask = sitk.GetArrayFromImage(tumour_mask(reviewed))
    before_attributes = {name: reviewed.GetAttribute(name) for name in reviewed.GetAttributeNames()}
    count = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")

    again = import_segmentation_result(scene, tmp_path / "segmentation", t2)  # the same automatic result again

    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == count + 2
    assert {again.automatic.GetID(), again.draft.GetID()}.isdisjoint({reviewed.GetID(), result.draft.GetID()})
    assert again.draft.GetName() == "T2 TSE AX tumour (review) 2"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(tumour_mask(reviewed)), before_mask)
    assert {name: reviewed.GetAttribute(name) for name in reviewed.GetAttributeNames()} == before_attributes
    assert review_state(reviewed) == N.STATUS_REVIEWED
    assert [node.GetID() for node in segmentations_of(scene, N.STATUS_REVIEWED)] == [reviewed.GetID()]


def test_new_working_copy_of_a_reviewed_segmentation(scene, imported, tmp_path):
    t2, _, _, result = imported
    edit_draft(result.draft, t2)
    review = mark_reviewed(scene, result.draft, "R", tmp_path / "r")
    draft = new_working_copy(scene, review.reviewed)
    assert N.status_of(draft) == N.STATUS_DRAFT
    assert draft.GetNodeReference(N.REFERENCE_AUTOMATIC) is result.automatic  # edits still measured against the network
    np.testing.assert_array_equal(sitk.GetArrayFromImage(tumour_mask(draft)), sitk.GetArrayFromImage(tumour_mask(review.reviewed)))
    assert [f.slice for f in flagged_from_node(draft)] == [6, 1, 12]
    second = mark_reviewed(scene, draft, "Second Reader", tmp_path / "r2")
    assert review_state(review.reviewed) == N.STATUS_REVIEWED and review_state(second.reviewed) == N.STATUS_REVIEWED
    with pytest.raises(InputError, match="not made by CervicalAI"):
        new_working_copy(scene, scene.AddNewNodeByClass("vtkMRMLSegmentationNode"))


def test_reviewed_mask_export_carries_the_review_record(scene, imported, tmp_path):
    t2, _, _, result = imported
    review = mark_reviewed(scene, result.draft, "R", tmp_path / "r")
    mask_path, reviewed = export_tumour_mask(review.reviewed, tmp_path / "predict")
    assert reviewed
    record = read_review(mask_path)  # the engine's reader: hash matches the exported file
    assert record.reviewed and record.reviewer == "R" and record.edit_metrics.dice == 1.0
    draft_path, draft_reviewed = export_tumour_mask(result.draft, tmp_path / "draft")
    assert not draft_reviewed and not read_review(draft_path).reviewed


def test_export_reviewed_case_writes_an_annotated_case_folder(scene, tmp_path):
    t2_image = make_t2()
    t2 = volume_node_from_image(scene, t2_image, "T2")
    adc_image = make_t2(size=(20, 20, 8), spacing=(2.0, 2.0, 5.0))
    adc = volume_node_from_image(scene, adc_image, "ADC")
    write_result(tmp_path / "seg", box_mask(t2_image))
    result = import_segmentation_result(scene, tmp_path / "seg", t2, {"ADC": adc})
    with pytest.raises(InputError, match="is draft, not reviewed"):
        export_reviewed_case(result.draft, tmp_path / "nope")
    review = mark_reviewed(scene, result.draft, "R", tmp_path / "r")
    out = export_reviewed_case(review.reviewed, tmp_path / "export" / "case1", clinical={"age": 51})
    case = load_case(out)
    assert case.roles == ["T2W", "ADC"]
    assert case.clinical == {"age": 51}
    np.testing.assert_array_equal(sitk.GetArrayFromImage(case.label("tumor")), sitk.GetArrayFromImage(box_mask(t2_image)))
    assert read_review(case.label_paths["tumor"]).reviewed
    assert review.reviewed.GetAttribute("CervicalAI.ExportedTo") == str(out.resolve())
    with pytest.raises(Exception, match="not empty"):
        export_reviewed_case(review.reviewed, out)


# --- volume roles ------------------------------------------------------------------------------------

def test_segmentation_job_registers_only_when_there_is_something_to_register(scene, tmp_path):
    t2_image = make_t2()
    t2 = volume_node_from_image(scene, t2_image, "T2")
    alone = new_work_folder(tmp_path, "T2 only")
    export_case_folder({"T2W": t2}, alone / "input")
    job = segmentation_job("/slicer/bin/PythonSlicer", alone, "gpu")
    assert len(job.steps) == 1 and job.case == alone / "input"
    assert job.steps[0].command == [
        "/slicer/bin/PythonSlicer", "-m", "CervicalAILib.cli", "segment", str(alone / "input"),
        "--out", str(alone / "segmentation"), "--device", "gpu",
    ]  # fmt: skip
    full = new_work_folder(tmp_path, "T2 only")
    assert full != alone and full.name.startswith("T2_only-")
    adc = volume_node_from_image(scene, make_t2(size=(10, 10, 5)), "ADC")
    export_case_folder({"T2W": t2, "ADC": adc}, full / "input")
    job = segmentation_job("py", full, "cpu", model=tmp_path / "bundle")
    assert [step.command[3:5] for step in job.steps] == [["study", "register"], ["segment", str(full / "case")]]
    assert job.steps[1].command[-2:] == ["--model", str(tmp_path / "bundle")]
    assert job.steps[1].weight > job.steps[0].weight
    job = segmentation_job("py", full, "cpu", nnunet_model=tmp_path / "site-nnunet")  # the hub setting
    assert job.steps[1].command[-2:] == ["--nnunet-model", str(tmp_path / "site-nnunet")]
    with pytest.raises(InputError, match="device must be one of cpu, gpu"):
        segmentation_job("py", full, "tpu")
    with pytest.raises(InputError, match="no T2W image"):
        segmentation_job("py", tmp_path / "nothing", "cpu")


def test_the_segment_module_lib_is_listed_for_packaging():
    text = (REPO / "CervicalAISegment" / "CMakeLists.txt").read_text()
    for name in ("review.py", "pipeline.py"):
        assert f"CervicalAISegmentLib/{name}" in text
    hub = (REPO / "CervicalAI" / "CMakeLists.txt").read_text()
    for name in ("scene.py", "volumes.py", "segmentation.py", "reviewed.py", "runner.py"):
        assert f"CervicalAIHubLib/{name}" in hub


def test_apply_end_to_end_with_the_real_engine_in_the_background(scene, tmp_path):
    """Volumes in the scene -> exported case -> `study register` + `segment` in a child process
    (progress parsed) -> result nodes; a tiny hand-built ONNX bundle that marks the bright
    sphere of a phantom, so the expected contour is known."""
    import sys

    from segmentation_testdata import make_bundle, phantom

    from CervicalAILib.core.background import BackgroundRun, engine_environment

    image, truth = phantom(direction=tuple(rotation([0.0, 0.3, 1.0], 11.0).ravel()))
    t2 = volume_node_from_image(scene, image, "T2 phantom")
    adc_image = sitk.Resample(image, image, sitk.Euler3DTransform(), sitk.sitkLinear, 0.0)
    adc_image.SetOrigin(tuple(np.array(image.GetOrigin()) + [0.4, -0.3, 0.5]))  # its own, shifted grid
    adc = volume_node_from_image(scene, adc_image, "ADC phantom")
    bundle = make_bundle(tmp_path / "bundle")
    work = new_work_folder(tmp_path, t2.GetName())
    export_case_folder({"T2W": t2, "ADC": adc}, work / "input", compress=False)  # as Apply does
    job = segmentation_job(sys.executable, work, "cpu", model=bundle.path)
    run = BackgroundRun(job.steps, env=engine_environment()).start()
    state = run.wait(timeout=300)
    assert state.status == "succeeded", run.error_message()
    assert run.fraction == 1.0 and sum(line.startswith("PROGRESS") for line in run.lines) >= 4
    result = import_segmentation_result(scene, job.result, t2, {"ADC": adc}, case_folder=job.input_case, transforms_folder=job.case)
    mask = tumour_mask(result.draft)
    assert measure.dice(mask, truth) > 0.85
    assert result.draft.GetAttribute(N.MODEL) == "tiny-seg@0.0.1"
    assert load_case(result.draft.GetAttribute(N.CASE_FOLDER)).roles == ["T2W", "ADC"]
    assert (Path(result.draft.GetAttribute(N.TRANSFORMS_FOLDER)) / "transforms" / "ADC.tfm").is_file()  # for Predict
    probability = slicer.util.arrayFromVolume(result.probability)
    assert 0.0 <= probability.min() and probability.max() <= 1.0 and probability.max() > 0.9


@pytest.mark.parametrize("status", ["no cervix or uterus recognised", "no cervix recognised"])
def test_a_study_without_cervix_or_uterus_gets_the_gate_sentence_not_a_missing_file(status, tmp_path):
    """Either of the gate's sentences (both organs missing, or a uterus without enough cervix) is what the
    module shows, taken from segmentation.json."""
    from CervicalAIHubLib.segmentation import no_anatomy_message, read_result

    result = tmp_path / "segmentation"
    result.mkdir()
    sentence = f"{status} in this study"
    summary = {"tumor_found": False, "status": status, "message": sentence,
               "anatomy_gate": {"applied": True, "anatomy_found": False, "message": sentence}, "files": {}}
    (result / "segmentation.json").write_text(json.dumps(summary))
    assert no_anatomy_message(result) == sentence
    with pytest.raises(InputError, match=f"segmentation: {sentence}: no tumour contour was made$"):
        read_result(result)
    summary["anatomy_gate"]["anatomy_found"] = True  # a normal run that lost its mask: the old message
    (result / "segmentation.json").write_text(json.dumps(summary))
    assert no_anatomy_message(result) is None
    with pytest.raises(InputError, match="did the segment command finish"):
        read_result(result)
    assert no_anatomy_message(tmp_path / "nothing-here") is None


def test_organs_of_the_network_come_in_as_hidden_segments_beside_the_tumour(scene, tmp_path):
    t2_image = make_t2()
    t2 = volume_node_from_image(scene, t2_image, "T2 TSE AX")
    mask = box_mask(t2_image)
    folder = tmp_path / "segmentation"
    write_result(folder, mask, files={"mask": "tumor.nii.gz", "organs": "organs.nii.gz", "organ_labels": "organs.json"})
    organs = sitk.GetArrayFromImage(t2_image).astype(np.uint8) * 0
    organs[:, 0:5, :] = 1  # bladder at the front, rectum at the back (labels as segment writes them)
    organs[:, 30:36, :] = 2
    image = sitk.GetImageFromArray(organs)
    image.CopyInformation(t2_image)
    sitk.WriteImage(image, str(folder / "organs.nii.gz"))
    (folder / "organs.json").write_text(json.dumps({"bladder": 1, "rectum": 2}))
    result = import_segmentation_result(scene, folder, t2, {})
    segmentation = result.organs.GetSegmentation()
    names = sorted(segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments()))
    assert names == ["bladder", "rectum"]
    assert result.organs.GetDisplayNode().GetVisibility() == 0
    assert N.status_of(result.organs) == N.STATUS_ORGANS
    # the tumour segmentations are still the tumour alone, and the organs are no CervicalAI contour to review
    assert int(sitk.GetArrayViewFromImage(tumour_mask(result.draft)).sum()) == int(sitk.GetArrayViewFromImage(mask).sum())
    assert result.organs not in segmentations_of(scene, N.STATUS_AUTOMATIC) + segmentations_of(scene, N.STATUS_DRAFT)
    # a result without organs: none
    plain = import_segmentation_result(scene, _plain_result(tmp_path, mask), t2, {})
    assert plain.organs is None


def _plain_result(tmp_path, mask):
    folder = tmp_path / "plain"
    write_result(folder, mask)
    return folder
