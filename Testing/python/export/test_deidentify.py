"""De-identification: keyed pseudonyms, UID remapping, date shifting, and no PHI left in any exported byte."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset
from synthetic_dicom import make_series

from CervicalAILib.core.errors import InputError
from CervicalAILib.export.deidentify import Deidentifier, load_key, profile_table, resolve_action
from CervicalAILib.export.dicom_seg import export_dicom_seg, read_dicom_seg
from CervicalAILib.export.masks import export_mask_file
from CervicalAILib.export.nnunet import export_nnunet
from CervicalAILib.export.reference import load_reference_series
from CervicalAILib.io.case import write_case
from CervicalAILib.review.record import mark_reviewed

KEY = b"site-secret-key-0123456789"
UID_SYNTAX = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
PHI_TEXT = {
    "PatientName": "Quillfeather^Zebedee^Marguerite",
    "PatientID": "MRN-99812345",
    "PatientBirthDate": "19711203",
    "OtherPatientIDs": "ALT-55501234",
    "PatientAddress": "7 Privetholme Drive",
    "PatientTelephoneNumbers": "555-0199-4477",
    "InstitutionName": "St Elsewhereton Hospital",
    "InstitutionAddress": "12 Harleyford Street",
    "ReferringPhysicianName": "Housemartin^Gregory",
    "PerformingPhysicianName": "Quinnsworth^Michaela",
    "OperatorsName": "Techwright^Tomas",
    "StationName": "STELSE-MR01",
    "DeviceSerialNumber": "SN8876123",
    "AccessionNumber": "ACC77123456",
    "StudyID": "STUDY4455",
    "SeriesDescription": "t2 tra Zebedee follow-up",
    "StudyDescription": "Pelvis for Quillfeather",
    "ImageComments": "called Zebedee on 555-0199-4477",
    "AdditionalPatientHistory": "history of Quillfeather family",
    "StudyDate": "20240315",
    "SeriesDate": "20240315",
    "AcquisitionDate": "20240315",
    "ContentDate": "20240315",
    "PatientAge": "052Y",
}
# what must not appear anywhere in the exported bytes (text compared case-insensitively)
FORBIDDEN = ["Quillfeather", "Zebedee", "Marguerite", "MRN-99812345", "99812345", "19711203", "ALT-55501234",
             "Privetholme", "555-0199", "Elsewhereton", "Harleyford", "Housemartin", "Quinnsworth", "Techwright",
             "STELSE", "SN8876123", "ACC77123456", "STUDY4455", "20240315", "SPS-778899", "CURVEDATA-ZZ",
             "Overlay of Zeb", "Smithfieldson", "PRIVATE-PHI"]


def phi_series(folder: Path, n_slices: int = 6) -> tuple[list[Path], list[str]]:
    """A T2 series full of PHI (also in private tags, a nested sequence, curves and overlays);
    returns its files and every original UID."""
    series = make_series(folder, n_slices=n_slices, rows=10, columns=12, write=False, patient_id="MRN-99812345")
    files, uids = [], []
    for number, ds in enumerate(series.datasets, start=1):
        for keyword, value in PHI_TEXT.items():
            setattr(ds, keyword, value)
        request = Dataset()
        request.RequestedProcedureDescription = "MRI for Quillfeather"
        request.ScheduledProcedureStepID = "SPS-778899"
        ds.RequestAttributesSequence = [request]
        block = ds.private_block(0x0029, "ACME PHI", create=True)
        block.add_new(0x10, "LO", "PRIVATE-PHI Zebedee Quillfeather")
        ds.add_new(0x50003000, "OB", b"CURVEDATA-ZZ")  # retired curve data
        ds.add_new(0x60003000, "OW", b"\x01\x00" * 60)  # overlay data
        ds.add_new(0x60004000, "LT", "Overlay of Zeb")
        uids += [ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID]
        path = folder / f"IM{number:04d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files, sorted(set(uids))


def exported_bytes(folder: Path) -> dict[Path, bytes]:
    """Every file under `folder`, gzip members decompressed (NIfTI, .seg.nrrd data) as well."""
    contents = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data += gzip.decompress(data)
        elif path.name.endswith(".seg.nrrd"):
            data += gzip.decompress(data.split(b"\n\n", 1)[1])
        contents[path] = data + str(path.relative_to(folder)).encode()
    return contents


def assert_no_phi(folder: Path, original_uids: list[str]) -> None:
    contents = exported_bytes(folder)
    assert contents, "nothing was exported"
    for path, data in contents.items():
        lowered = data.lower()
        for text in FORBIDDEN:
            assert text.lower().encode() not in lowered, f"{text!r} survives in {path.name}"
        for uid in original_uids:
            assert uid.encode() not in data, f"original UID {uid} survives in {path.name}"


def all_uids(ds: Dataset) -> list[str]:
    found = []
    ds.walk(lambda d, e: found.extend([str(v) for v in (e.value if e.VM > 1 else [e.value])]) if e.VR == "UI" and e.value else None)
    return found


def test_key_handling(tmp_path, monkeypatch):
    monkeypatch.delenv("CERVICALAI_DEID_KEY", raising=False)
    with pytest.raises(InputError, match="needs a secret key"):
        load_key()
    with pytest.raises(InputError, match="too short"):
        load_key("short")
    (tmp_path / "site.key").write_text("a-long-enough-site-key\n")
    assert load_key(key_file=tmp_path / "site.key") == b"a-long-enough-site-key"
    monkeypatch.setenv("CERVICALAI_DEID_KEY", "key-from-the-environment")
    assert load_key() == b"key-from-the-environment"
    with pytest.raises(InputError, match="not both"):
        load_key("x" * 20, tmp_path / "site.key")
    with pytest.raises(InputError, match="shift or remove"):
        Deidentifier(KEY, dates="blur")


def test_pseudonyms_uids_and_dates_are_keyed_and_consistent():
    a, b, other = Deidentifier(KEY), Deidentifier(KEY), Deidentifier(b"another-site-key-987654")
    assert a.pseudonym("MRN-1") == b.pseudonym("MRN-1") != a.pseudonym("MRN-2")
    assert a.pseudonym("MRN-1") != other.pseudonym("MRN-1")
    assert re.fullmatch(r"CAI-[0-9A-F]{12}", a.pseudonym("MRN-1"))
    uid = a.uid("1.2.840.113619.2.55.3.604688119.969.1268071029.320")
    assert uid == b.uid("1.2.840.113619.2.55.3.604688119.969.1268071029.320") != other.uid("1.2.3")
    assert UID_SYNTAX.match(uid) and len(uid) <= 64 and uid.startswith("2.25.")
    offset = a.date_offset_days("MRN-1")
    assert 1 <= offset <= 3650 and offset == b.date_offset_days("MRN-1")
    # intervals between a patient's dates survive the shift
    first, second = a.shift_date("20240101", "MRN-1"), a.shift_date("20240301", "MRN-1")
    from datetime import datetime

    assert (datetime.strptime(second, "%Y%m%d") - datetime.strptime(first, "%Y%m%d")).days == 60
    assert Deidentifier(KEY, dates="remove").shift_date("20240101", "MRN-1") is None


def test_profile_table_is_the_standards():
    table = profile_table()
    assert len(table) > 600
    assert table[0x00100010][0] == "Z"  # Patient's Name
    assert table[0x00080018][0] == "U"  # SOP Instance UID
    assert table[0x0008103E][0] == "X"  # Series Description
    assert table[0x00080080][0] == "X/Z/D"  # Institution Name
    assert [resolve_action(c) for c in ("X", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*", "U")] == [
        "X", "Z", "D", "D", "D", "U*", "U"]


def test_dataset_profile_actions(tmp_path):
    files, _ = phi_series(tmp_path / "T2", n_slices=2)
    original = pydicom.dcmread(files[0])
    clean = Deidentifier(KEY).dataset(original)
    assert original.PatientName == PHI_TEXT["PatientName"]  # the input is not changed
    pseudonym = Deidentifier(KEY).pseudonym("MRN-99812345")
    assert clean.PatientName == pseudonym and clean.PatientID == pseudonym
    assert clean.PatientIdentityRemoved == "YES"
    # Basic Profile, Clean Descriptors, Modified Dates
    assert [c.CodeValue for c in clean.DeidentificationMethodCodeSequence] == ["113100", "113105", "113107"]
    assert clean.LongitudinalTemporalInformationModified == "MODIFIED"
    assert clean.PatientBirthDate == ""  # type 2: kept empty
    assert clean.get("SeriesDescription", "") == ""  # a descriptor: cleaned (the exporter writes the role)
    assert "ImageComments" not in clean and "OtherPatientIDs" not in clean and "InstitutionName" not in clean
    assert clean.StudyDate == Deidentifier(KEY).shift_date("20240315", "MRN-99812345") != "20240315"
    assert not any(element.tag.is_private for element in clean)
    assert 0x50003000 not in clean and 0x60003000 not in clean and 0x60004000 not in clean
    assert clean.SOPClassUID == original.SOPClassUID  # a registered UID stays
    assert clean.SOPInstanceUID == clean.file_meta.MediaStorageSOPInstanceUID != original.SOPInstanceUID
    assert all(UID_SYNTAX.match(uid) and len(uid) <= 64 for uid in all_uids(clean))
    assert clean.Rows == original.Rows and np.array_equal(clean.pixel_array, original.pixel_array)
    removed = Deidentifier(KEY, dates="remove").dataset(original)
    assert removed.StudyDate == "" and removed.LongitudinalTemporalInformationModified == "REMOVED"
    assert [c.CodeValue for c in removed.DeidentificationMethodCodeSequence] == ["113100", "113105"]


def test_no_phi_survives_in_any_exported_file(tmp_path):
    files, original_uids = phi_series(tmp_path / "source" / "T2")
    reference = load_reference_series(tmp_path / "source" / "T2").image  # the case folder's T2W (same grid)
    tumour = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
    tumour[2:4, 3:7, 4:9] = 1
    mask = sitk.GetImageFromArray(tumour)
    mask.CopyInformation(reference)
    # a case folder named after the MRN, with PHI in the NIfTI header and clinical.json
    t2 = sitk.Cast(reference, sitk.sitkInt16)
    t2.SetMetaData("descrip", "Quillfeather Zebedee 19711203")
    case = write_case(tmp_path / "source" / "MRN-99812345", {"T2W": t2}, labels={"tumor": mask},
                      clinical={"case_id": "MRN-99812345", "patient_id": "MRN-99812345", "name": "Quillfeather"})
    mask_path = case / "labels" / "tumor.nii.gz"
    mark_reviewed(mask_path, "Dr Smithfieldson")

    out = tmp_path / "partner"
    deid = Deidentifier(KEY)
    seg = export_dicom_seg(mask_path, tmp_path / "source" / "T2", out / "seg.dcm", deidentifier=deid,
                           images_out=out / "T2")
    export_mask_file(mask_path, out / "tumor.nii.gz", kind="nifti", reference=tmp_path / "source" / "T2",
                     deidentifier=deid)
    export_mask_file(mask_path, out / "tumor.seg.nrrd", kind="seg-nrrd", deidentifier=deid)
    nnunet = export_nnunet([case], out / "nnUNet_raw", 3, "Partner", deidentifier=deid)
    assert_no_phi(out, original_uids)

    pseudonym = deid.pseudonym("MRN-99812345")
    assert nnunet.cases == [pseudonym]  # file names carry the pseudonym
    for manifest_path in out.rglob("*manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        assert manifest["deidentified"]["dates"] == "shift"
        assert all(entry["case"] == pseudonym for entry in manifest["cases"])
        assert all(entry["mask"]["reviewer"] == deid.reviewer_pseudonym("Dr Smithfieldson") for entry in manifest["cases"])
    # the SEG still references its (de-identified) images, and reads back onto them
    seg_ds = pydicom.dcmread(seg.path)
    images = [pydicom.dcmread(p) for p in seg.image_files]
    assert seg_ds.PatientID == pseudonym and {ds.PatientID for ds in images} == {pseudonym}
    assert seg_ds.StudyInstanceUID == images[0].StudyInstanceUID
    assert seg_ds.FrameOfReferenceUID == images[0].FrameOfReferenceUID
    assert seg_ds.StudyDate == images[0].StudyDate == deid.shift_date("20240315", "MRN-99812345")
    assert seg_ds.ReferencedSeriesSequence[0].SeriesInstanceUID == images[0].SeriesInstanceUID
    referenced = {item.ReferencedSOPInstanceUID for item in seg_ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {ds.SOPInstanceUID for ds in images}
    assert all(UID_SYNTAX.match(uid) and len(uid) <= 64 for uid in all_uids(seg_ds))
    deidentified_t2 = load_reference_series(out / "T2").image
    back = read_dicom_seg(seg.path, deidentified_t2)
    assert np.array_equal(sitk.GetArrayFromImage(back), tumour)

    # a second export with the same key gives the same pseudonyms and UIDs; another key does not
    again = export_dicom_seg(mask_path, tmp_path / "source" / "T2", tmp_path / "again" / "seg.dcm",
                             deidentifier=Deidentifier(KEY), images_out=tmp_path / "again" / "T2")
    assert pydicom.dcmread(again.image_files[0]).SOPInstanceUID == images[0].SOPInstanceUID
    assert pydicom.dcmread(again.path).PatientID == pseudonym
    other = export_dicom_seg(mask_path, tmp_path / "source" / "T2", tmp_path / "other" / "seg.dcm",
                             deidentifier=Deidentifier(b"another-site-key-987654"))
    assert pydicom.dcmread(other.path).PatientID != pseudonym


def test_the_phi_scan_finds_phi_in_an_identified_export(tmp_path):
    """The scan above can fail: without --deidentify the same export is full of PHI."""
    files, original_uids = phi_series(tmp_path / "source" / "T2", n_slices=3)
    reference = load_reference_series(tmp_path / "source" / "T2").image
    mask = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(reference)
    mask[3, 3, 1] = 1
    sitk.WriteImage(mask, str(tmp_path / "tumor.nii.gz"))
    export_dicom_seg(tmp_path / "tumor.nii.gz", tmp_path / "source" / "T2", tmp_path / "plain" / "seg.dcm")
    with pytest.raises(AssertionError, match="survives in seg.dcm"):
        assert_no_phi(tmp_path / "plain", original_uids)
