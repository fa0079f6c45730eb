"""DICOM SEG (highdicom), Slicer .seg.nrrd and NIfTI mask export: round trips, terminology, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from synthetic_dicom import make_series

from CervicalAILib.cli import main
from CervicalAILib.contracts.terminology import TUMOUR_TERMINOLOGY
from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.export.dicom_seg import export_dicom_seg, read_dicom_seg
from CervicalAILib.export.manifest import verify_manifest
from CervicalAILib.export.masks import export_mask_file
from CervicalAILib.export.reference import load_reference_series
from CervicalAILib.io.geometry import same_grid
from CervicalAILib.review.record import mark_reviewed
from conftest import refdata_path

OBLIQUE = dict(row_direction=(1.0, 0.2, 0.0), column_direction=(-0.2, 1.0, 0.1))


def tumour_mask(reference: sitk.Image, path: Path | None = None) -> sitk.Image:
    """Two blobs on separate slices (one slice between them empty) on `reference`'s grid."""
    array = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
    z, y, x = array.shape
    array[z // 3: z // 3 + 2, y // 3: 2 * y // 3, x // 4: x // 2] = 1
    array[z // 3 + 3, 1:3, x // 2: x // 2 + 3] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(reference)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(mask, str(path))
    return mask


@pytest.fixture
def series(tmp_path):
    return make_series(tmp_path / "T2", n_slices=8, rows=12, columns=14, **OBLIQUE)


def test_seg_references_the_series_and_reads_back_to_the_same_voxels(tmp_path, series):
    mask_path = tmp_path / "case" / "labels" / "tumor.nii.gz"
    mask = tumour_mask(series.image, mask_path)
    automatic = sitk.Image(mask)
    automatic[2, 2, 2] = 1  # the reader removed one voxel from the automatic contour
    mark_reviewed(mask_path, "Dr Reader", automatic_mask=automatic, automatic_model="cervix-seg@2.1")
    result = export_dicom_seg(mask_path, tmp_path / "T2", tmp_path / "out" / "seg.dcm")
    assert result.algorithm_type == "SEMIAUTOMATIC"
    seg = pydicom.dcmread(result.path)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    assert seg.StudyInstanceUID == series.study_uid
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {ds.SOPInstanceUID for ds in series.datasets}
    segment = seg.SegmentSequence[0]
    assert segment.SegmentLabel == "tumor"
    assert segment.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert segment.SegmentAlgorithmName == "cervix-seg"
    assert segment.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "2.1"
    category = segment.SegmentedPropertyCategoryCodeSequence[0]
    kind = segment.SegmentedPropertyTypeCodeSequence[0]
    region = segment.AnatomicRegionSequence[0]
    assert (category.CodeValue, category.CodingSchemeDesignator) == ("49755003", "SCT")
    assert (kind.CodeValue, kind.CodeMeaning) == ("86049000", "Neoplasm, Primary")
    assert (region.CodeValue, region.CodeMeaning) == ("71252005", "Cervix uteri")
    # voxels back on the reference geometry, through highdicom's volume and through the source frames
    back = read_dicom_seg(result.path, series.image)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    import highdicom as hd

    reread = hd.seg.segread(str(result.path))
    reference = load_reference_series(tmp_path / "T2")
    by_source = reread.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in reference.datasets], segment_numbers=[1])
    assert np.array_equal(by_source[..., 0], sitk.GetArrayFromImage(mask))
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["kind"] == "dicom-seg" and manifest["deidentified"] is False
    assert manifest["cases"][0]["mask"]["automatic_model"] == "cervix-seg@2.1"
    assert manifest["cases"][0]["mask"]["edit_metrics"]["dice"] < 1.0
    assert verify_manifest(result.manifest_path) == []


@pytest.mark.parametrize("review, expected", [("manual", "MANUAL"), ("unchanged", "MANUAL"), ("none", "AUTOMATIC")])
def test_algorithm_type_follows_the_review_record(tmp_path, series, review, expected):
    mask_path = tmp_path / "labels" / "tumor.nii.gz"
    automatic = tumour_mask(series.image, mask_path)
    if review == "manual":  # drawn by the reader: no algorithm
        mark_reviewed(mask_path, "Dr Reader")
    elif review == "unchanged":  # the automatic contour, reviewed and accepted as it is
        mark_reviewed(mask_path, "Dr Reader", automatic_mask=automatic, automatic_model="seg@3")
    else:  # unreviewed output of `cervicalai segment`: the model comes from segmentation.json
        (mask_path.parent / "segmentation.json").write_text(json.dumps({"model": {"name": "seg", "version": "3"}}))
    result = export_dicom_seg(mask_path, tmp_path / "T2", tmp_path / "seg.dcm")
    segment = pydicom.dcmread(result.path).SegmentSequence[0]
    assert segment.SegmentAlgorithmType == expected
    if review == "manual":
        assert "SegmentationAlgorithmIdentificationSequence" not in segment
    else:  # an automatic contour existed: the model is named
        assert segment.SegmentAlgorithmName == "seg"
        assert segment.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "3"


def test_real_prostatex_t2_series_with_a_made_up_mask(tmp_path):
    folder = refdata_path("mri", "ProstateX-0000_dicom", "4.000000-t2tsetra-00702")
    reference = load_reference_series(folder)
    assert reference.image.GetSize() == (384, 384, 19)
    mask_path = tmp_path / "tumor.nii.gz"
    mask = tumour_mask(reference.image, mask_path)
    result = export_dicom_seg(mask_path, folder, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(result.path)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == reference.series_uid
    assert seg.FrameOfReferenceUID == reference.datasets[0].FrameOfReferenceUID
    back = read_dicom_seg(result.path, reference.image)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))


def test_mask_on_another_grid_is_resampled_with_a_warning(tmp_path, series):
    mask = tumour_mask(series.image)
    finer = sitk.Image([2 * s for s in series.image.GetSize()[:2]] + [series.image.GetSize()[2]], sitk.sitkUInt8)
    finer.SetSpacing([s / 2 for s in series.image.GetSpacing()[:2]] + [series.image.GetSpacing()[2]])
    finer.SetDirection(series.image.GetDirection())
    # half-voxel shift so that the finer voxel centres sit inside the coarse voxels
    finer.SetOrigin(series.image.TransformContinuousIndexToPhysicalPoint((-0.25, -0.25, 0.0)))
    fine_mask = sitk.Resample(mask, finer, sitk.Transform(), sitk.sitkNearestNeighbor)
    sitk.WriteImage(fine_mask, str(tmp_path / "fine.nii.gz"))
    result = export_dicom_seg(tmp_path / "fine.nii.gz", tmp_path / "T2", tmp_path / "seg.dcm")
    assert any("resampled" in w for w in result.warnings)
    back = read_dicom_seg(result.path, series.image)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    # a mask somewhere else entirely is refused
    far = sitk.Image(fine_mask)
    far.SetOrigin([v + 500.0 for v in fine_mask.GetOrigin()])
    sitk.WriteImage(far, str(tmp_path / "far.nii.gz"))
    with pytest.raises(InputError, match="does not overlap the reference"):
        export_dicom_seg(tmp_path / "far.nii.gz", tmp_path / "T2", tmp_path / "far.dcm")
    assert not (tmp_path / "far.dcm").exists()


def test_incomplete_reference_series_is_refused(tmp_path):
    broken = make_series(tmp_path / "T2", n_slices=8, rows=6, columns=6, drop_slices=(4,))
    mask = sitk.Image(6, 6, 8, sitk.sitkUInt8)
    mask.CopyInformation(broken.image)
    mask[2, 2, 2] = 1
    sitk.WriteImage(mask, str(tmp_path / "tumor.nii.gz"))
    with pytest.raises(InputError, match="incomplete.*slice missing"):
        export_dicom_seg(tmp_path / "tumor.nii.gz", tmp_path / "T2", tmp_path / "seg.dcm")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(InputError, match="no DICOM image series"):
        export_dicom_seg(tmp_path / "tumor.nii.gz", tmp_path / "empty", tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


def test_existing_output_needs_overwrite(tmp_path, series):
    tumour_mask(series.image, tmp_path / "tumor.nii.gz")
    first = export_dicom_seg(tmp_path / "tumor.nii.gz", tmp_path / "T2", tmp_path / "seg.dcm")
    before = first.path.read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_dicom_seg(tmp_path / "tumor.nii.gz", tmp_path / "T2", tmp_path / "seg.dcm")
    assert first.path.read_bytes() == before
    again = export_dicom_seg(tmp_path / "tumor.nii.gz", tmp_path / "T2", tmp_path / "seg.dcm", overwrite=True)
    assert pydicom.dcmread(again.path).SOPInstanceUID != pydicom.dcmread(__import__("io").BytesIO(before)).SOPInstanceUID


def test_seg_nrrd_reads_back_in_slicer(tmp_path, series):
    import slicer

    from CervicalAILib.io.mrml import mask_from_segmentation_node

    mask = tumour_mask(series.image, tmp_path / "labels" / "tumor.nii.gz")
    path, manifest_path, warnings = export_mask_file(tmp_path / "labels" / "tumor.nii.gz", tmp_path / "tumor.seg.nrrd",
                                                     kind="seg-nrrd")
    assert warnings == [] and verify_manifest(manifest_path) == []
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "read")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    segment = segmentation.GetNthSegment(0)
    assert segment.GetName() == "tumor"
    import vtk

    entry = vtk.reference("")
    assert segment.GetTag("TerminologyEntry", entry)
    assert "SCT^86049000^Neoplasm, Primary" in str(entry) and "SCT^71252005^Cervix uteri" in str(entry)
    assert str(entry) == TUMOUR_TERMINOLOGY  # the Slicer module's segments carry the same entry
    back = mask_from_segmentation_node(node)
    assert same_grid(back, series.image, tolerance=1e-5)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))


def test_nifti_export_on_a_reference_grid_with_clean_header(tmp_path, series):
    mask = tumour_mask(series.image)
    mask.SetMetaData("descrip", "Jane Doe MRN 12345")
    sitk.WriteImage(mask, str(tmp_path / "tumor.nrrd"))
    path, manifest_path, _ = export_mask_file(tmp_path / "tumor.nrrd", tmp_path / "out.nii.gz", kind="nifti",
                                              reference=tmp_path / "T2")
    back = sitk.ReadImage(str(path))
    assert same_grid(back, series.image, tolerance=1e-5) and back.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    assert b"Jane" not in path.read_bytes() and b"Jane" not in __import__("gzip").decompress(path.read_bytes())
    case = json.loads(manifest_path.read_text())["cases"][0]
    assert case["case"] == "PAT1"  # the reference series' PatientID
    with pytest.raises(OutputExistsError):
        export_mask_file(tmp_path / "tumor.nrrd", tmp_path / "out.nii.gz", kind="nifti")


def test_cli_dicom_seg(tmp_path, series, capsys, monkeypatch):
    monkeypatch.delenv("CERVICALAI_DEID_KEY", raising=False)
    tumour_mask(series.image, tmp_path / "tumor.nii.gz")
    out = tmp_path / "seg.dcm"
    assert main(["export", "dicom-seg", "--mask", str(tmp_path / "tumor.nii.gz"), "--reference-dicom",
                 str(tmp_path / "T2"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert main(["export", "dicom-seg", "--mask", str(tmp_path / "tumor.nii.gz"), "--reference-dicom",
                 str(tmp_path / "T2"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", "dicom-seg", "--mask", str(tmp_path / "tumor.nii.gz"), "--reference-dicom",
                 str(tmp_path / "T2"), "--out", str(tmp_path / "x.dcm"), "--deidentify"]) == 2
    assert "needs a secret key" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["dicom-seg", "seg-nrrd", "nifti"])
def test_reviewed_only_refuses_a_mask_without_a_review(tmp_path, series, capsys, kind):
    mask_path = tmp_path / "labels" / "tumor.nii.gz"
    tumour_mask(series.image, mask_path)
    suffix = {"dicom-seg": ".dcm", "seg-nrrd": ".seg.nrrd", "nifti": ".nii.gz"}[kind]
    extra = ["--reference-dicom", str(tmp_path / "T2")] if kind == "dicom-seg" else []

    def export(name: str) -> int:
        return main(["export", kind, "--mask", str(mask_path), *extra, "--out", str(tmp_path / f"{name}{suffix}"),
                     "--reviewed-only"])

    # no record beside the mask: refused, the message names the mask, nothing written
    assert export("none") == 2
    err = capsys.readouterr().err
    assert str(mask_path) in err and "no review record" in err and "--reviewed-only" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T2", "labels"]
    # reviewed: exported
    mark_reviewed(mask_path, "Dr Reader")
    assert export("reviewed") == 0
    assert (tmp_path / f"reviewed{suffix}").is_file()
    capsys.readouterr()
    # changed after the review: the record no longer describes the mask, refused again
    edited = sitk.ReadImage(str(mask_path))
    edited[0, 0, 0] = 1
    sitk.WriteImage(edited, str(mask_path))
    assert export("edited") == 2
    assert "changed after the review" in capsys.readouterr().err
    assert not (tmp_path / f"edited{suffix}").exists()


@pytest.mark.parametrize("kind", ["dicom-seg", "seg-nrrd", "nifti"])
def test_a_crash_before_the_manifest_leaves_no_export_that_looks_complete(tmp_path, series, monkeypatch, kind):
    """The exported file appears last, after its manifest (and the --images-out folder): a crash
    while writing the manifest leaves neither the file nor a temporary one."""
    from CervicalAILib.export import manifest as manifest_module

    mask_path = tmp_path / "tumor.nii.gz"
    tumour_mask(series.image, mask_path)
    out = tmp_path / "out" / {"dicom-seg": "seg.dcm", "seg-nrrd": "tumor.seg.nrrd", "nifti": "tumor.nii.gz"}[kind]
    out.parent.mkdir()

    def export(**kwargs):
        if kind == "dicom-seg":
            return export_dicom_seg(mask_path, tmp_path / "T2", out, images_out=tmp_path / "out" / "T2", **kwargs)
        return export_mask_file(mask_path, out, kind=kind, **kwargs)

    def crash(path, document):
        assert not out.exists()  # the manifest is written before the file appears
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(manifest_module, "write_manifest", crash)
        with pytest.raises(OSError, match="disk full"):
            export()
    assert sorted(p.name for p in out.parent.iterdir()) == (["T2"] if kind == "dicom-seg" else [])
    # the same export then completes, the file with its manifest; a crash while replacing it
    # removes the old file rather than leaving it beside a manifest that does not describe it
    export(overwrite=True)
    assert verify_manifest(manifest_module.sidecar_path(out)) == []
    with monkeypatch.context() as patch:
        patch.setattr(manifest_module, "write_manifest", crash)
        with pytest.raises(OSError, match="disk full"):
            export(overwrite=True)
    assert not out.exists() and not [p for p in out.parent.iterdir() if ".tmp" in p.name]
