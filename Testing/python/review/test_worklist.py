"""The review worklist: per reader status, working copies, reviews, crash recovery, tables, export."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from worklist_testdata import box, case_folder, image, make_cohort

from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.export.reviewed_set import export_reviewed_set, majority_mask
from CervicalAILib.io import measurements as measure
from CervicalAILib.review.record import read_review
from CervicalAILib.review.worklist import (
    IN_PROGRESS,
    NOT_STARTED,
    REVIEW_DIR,
    REVIEWED,
    SKIPPED,
    agreement_table,
    flagged_slices,
    images_on_t2_grid,
    open_worklist,
    reader_folder_name,
    status_table,
)

WHEN = dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def cohort(tmp_path):
    return make_cohort(tmp_path / "cohort")


def test_reader_names_are_required_and_cannot_name_paths():
    assert reader_folder_name(" Dr Ann  Lee ") == "dr_ann_lee"
    assert reader_folder_name("O'Brien") == "o_brien"
    for bad in ("", "  ", "../x", "a/b", "..", ".hidden", "x" * 65, "Dr\nLee"):
        with pytest.raises(InputError):
            reader_folder_name(bad)


def test_cohort_folder_lists_case_folders_with_their_automatic_contours(cohort):
    worklist = open_worklist(cohort)
    assert worklist.case_ids() == ["C1", "C2", "C3"]
    assert worklist.case("C1").automatic_mask_path == cohort / "C1" / "segmentation" / "tumor.nii.gz"
    assert worklist.case("C3").segmentation is None
    assert worklist.case("C1").automatic_model() == "seg@1.0"
    for name in ("../C1", str(cohort / "C1"), "C1/..", "notes", REVIEW_DIR, "", None, 1):
        with pytest.raises(InputError, match="not in the worklist"):
            worklist.case(name)


def test_a_case_folder_linking_outside_the_cohort_is_refused(cohort, tmp_path):
    outside = case_folder(tmp_path / "elsewhere" / "X1")
    (cohort / "X1").symlink_to(outside)
    with pytest.raises(InputError, match="links outside the cohort"):
        open_worklist(cohort)


def test_csv_worklist_resolves_relative_paths_and_checks_them(cohort, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("case,segmentation\ncohort/C2,\ncohort/C1,cohort/C1/segmentation\n")
    worklist = open_worklist(listing)
    assert worklist.case_ids() == ["C2", "C1"] and worklist.root == tmp_path
    assert worklist.case("C2").segmentation == cohort / "C2" / "segmentation"
    bad = tmp_path / "bad.csv"
    bad.write_text("case\ncohort/notes\n")
    with pytest.raises(InputError, match="line 2: 'cohort/notes' is not a case folder"):
        open_worklist(bad)
    twice = tmp_path / "twice.csv"
    twice.write_text("case\ncohort/C1\ncohort/C1\n")
    with pytest.raises(InputError, match="appears twice"):
        open_worklist(twice)
    with pytest.raises(InputError, match="'case' column"):
        (tmp_path / "nocol.csv").write_text("path\nx\n")
        open_worklist(tmp_path / "nocol.csv")


def test_status_moves_from_not_started_to_reviewed_and_survives_reopening(cohort):
    worklist = open_worklist(cohort)
    reader = worklist.reader("Dr A")
    assert reader.status("C1").status == NOT_STARTED
    assert reader.start("C1", WHEN).status == IN_PROGRESS
    edited = image(box(1, 5, 8, 16, 8, 20))  # the reader widened the tumour by 4 columns
    reader.save_working("C1", edited)
    assert np.array_equal(sitk.GetArrayFromImage(reader.working_mask("C1")), box(1, 5, 8, 16, 8, 20))
    entry = reader.mark_reviewed("C1", edited, rating=2, comment=" widened ", now=WHEN)
    assert entry.folder == cohort / REVIEW_DIR / "dr_a" / "C1" / "reviewed-1"
    assert entry.rating == 2 and entry.comment == "widened"
    # a fresh Worklist object (a restart) reads the same status from the files
    again = open_worklist(cohort).reader("Dr A")
    status = again.status("C1")
    assert status.status == REVIEWED and status.latest.record.reviewed
    assert again.counts() == {NOT_STARTED: 2, IN_PROGRESS: 0, REVIEWED: 1, SKIPPED: 0}
    assert again.next_case() == "C2" and again.next_case(after="C2") == "C3" and again.next_case(after="C3") == "C2"
    # reopening keeps the review; a second review is a new folder, the first stays byte for byte
    first_files = {p.name: sha256_file(p) for p in entry.folder.iterdir()}
    assert again.reopen("C1").status == IN_PROGRESS
    second = again.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16)), rating=1, now=WHEN)
    assert second.folder.name == "reviewed-2" and second.record.origin == "automatic"
    assert {p.name: sha256_file(p) for p in entry.folder.iterdir()} == first_files
    assert [r.folder.name for r in again.reviews("C1")] == ["reviewed-1", "reviewed-2"]


def test_review_record_is_the_engine_record_with_the_edit_metrics(cohort):
    reader = open_worklist(cohort).reader("Dr A")
    edited = image(box(1, 5, 8, 16, 8, 20))
    entry = reader.mark_reviewed("C1", edited, now=WHEN)
    record = json.loads((entry.folder / "tumor.nii.gz.review.json").read_text())
    automatic = image(box(1, 5, 8, 16, 8, 16))
    expected = measure.edit_metrics(automatic, edited)
    assert record == {
        "reviewed": True, "origin": "edited", "reviewer": "Dr A", "reviewed_at": "2026-11-22T09:30:00+00:00",
        "mask_sha256": sha256_file(entry.folder / "tumor.nii.gz"), "automatic_model": "seg@1.0",
        "edit_metrics": expected.to_dict(),
    }
    assert record["edit_metrics"]["dice"] == pytest.approx(2 * 256 / (256 + 384))
    assert record["edit_metrics"]["volume_change_ml"] == pytest.approx(128 * 4 / 1000)
    assert read_review(entry.folder / "tumor.nii.gz").algorithm_type == "SEMIAUTOMATIC"


def test_without_an_automatic_contour_the_review_is_manual(cohort):
    reader = open_worklist(cohort).reader("Dr A")
    entry = reader.mark_reviewed("C3", image(box(2, 3, 2, 6, 2, 6)), now=WHEN)
    assert entry.record.origin == "manual" and entry.record.edit_metrics is None


def test_bad_ratings_comments_and_grids_are_refused(cohort):
    reader = open_worklist(cohort).reader("Dr A")
    mask = image(box(1, 5, 8, 16, 8, 16))
    for rating in (0, 6, "two", 2.5, True):
        with pytest.raises(InputError, match="rating"):
            reader.mark_reviewed("C1", mask, rating=rating)
    with pytest.raises(InputError, match="comment"):
        reader.mark_reviewed("C1", mask, comment="x" * 3000)
    with pytest.raises(InputError, match="not on the grid"):
        reader.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16)[:, :20, :20]))
    with pytest.raises(InputError, match="needs a reason"):
        reader.skip("C2", "  ")
    assert not (cohort / REVIEW_DIR / "dr_a" / "C1" / "reviewed-1").exists()


def test_skip_with_reason(cohort):
    reader = open_worklist(cohort).reader("Dr A")
    status = reader.skip("C2", "motion artefacts", now=WHEN)
    assert status.status == SKIPPED and status.skip_reason == "motion artefacts"
    header, rows = status_table(open_worklist(cohort))
    assert header == ["case", "automatic contour", "dr_a"]
    assert rows[1] == ["C2", "yes", "skipped (motion artefacts)"]
    assert rows[2][1] == "not run"


def test_a_crash_between_the_review_folder_and_the_status_write_still_counts_the_review(cohort, monkeypatch):
    reader = open_worklist(cohort).reader("Dr A")
    reader.start("C1")
    from CervicalAILib.review import worklist as module

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(module.ReaderWorklist, "_write_status", crash)
    with pytest.raises(KeyboardInterrupt):
        reader.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16)))
    monkeypatch.undo()
    status = open_worklist(cohort).reader("Dr A").status("C1")
    assert status.status == REVIEWED and status.latest.folder.name == "reviewed-1"


def test_a_crash_while_writing_the_review_folder_leaves_no_half_review(cohort, monkeypatch):
    reader = open_worklist(cohort).reader("Dr A")
    from CervicalAILib.review import record as engine_review

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(engine_review, "mark_reviewed", crash)
    with pytest.raises(KeyboardInterrupt):
        reader.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16)))
    monkeypatch.undo()
    folder = cohort / REVIEW_DIR / "dr_a" / "C1"
    assert not (folder / "reviewed-1").exists()
    assert [p for p in folder.iterdir() if "partial" in p.name] == []
    assert reader.status("C1").status == NOT_STARTED
    assert reader.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16))).folder.name == "reviewed-1"


def test_a_reviewed_mask_changed_afterwards_is_flagged(cohort):
    reader = open_worklist(cohort).reader("Dr A")
    entry = reader.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16)))
    sitk.WriteImage(image(box(1, 5, 8, 16, 8, 12)), str(entry.mask_path))
    status = reader.status("C1")
    assert status.status == REVIEWED and "changed after its review" in status.problem


def test_two_readers_never_share_a_file_and_their_agreement(cohort):
    worklist = open_worklist(cohort)
    a, b = worklist.reader("Dr A"), worklist.reader("Dr B")
    a.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16)), now=WHEN)
    files_a = {p: sha256_file(p) for p in (cohort / REVIEW_DIR / "dr_a").rglob("*") if p.is_file()}
    b.save_working("C1", image(box(1, 5, 8, 16, 8, 12)))
    b.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 12)), now=WHEN)
    assert {p: sha256_file(p) for p in (cohort / REVIEW_DIR / "dr_a").rglob("*") if p.is_file()} == files_a
    assert worklist.readers() == ["dr_a", "dr_b"]
    rows = agreement_table(worklist, "Dr A", "Dr B")
    assert [row["case_id"] for row in rows] == ["C1"]
    assert rows[0]["dice"] == pytest.approx(2 * 128 / (256 + 128))
    assert rows[0]["volume_ml_dr_a"] == pytest.approx(256 * 4 / 1000)
    with pytest.raises(InputError, match="two different readers"):
        agreement_table(worklist, "Dr A", "dr a")


def test_images_on_the_t2_grid_use_the_stored_transform(cohort):
    case_folder = cohort / "C1"
    # a transform T2WI -> DWI of +6 mm in x: the DWI point 6 mm further right shows at the T2WI point
    transform = sitk.TranslationTransform(3, (6.0, 0.0, 0.0))
    (case_folder / "segmentation" / "transforms").mkdir()
    sitk.WriteTransform(transform, str(case_folder / "segmentation" / "transforms" / "DWI.tfm"))
    dwi = sitk.ReadImage(str(case_folder / "DWI.nii.gz"))
    images, notes = images_on_t2_grid(open_worklist(cohort).case("C1"))
    assert notes == [] and set(images) == {"T2W", "DWI"}
    moved = images["DWI"]
    assert moved.GetSize() == images["T2W"].GetSize()
    point = moved.TransformIndexToPhysicalPoint((4, 6, 2))
    expected = dwi.EvaluateAtPhysicalPoint(transform.TransformPoint(point), sitk.sitkLinear)
    assert moved.GetPixel(4, 6, 2) == pytest.approx(expected, rel=1e-5)
    _images, notes = images_on_t2_grid(open_worklist(cohort).case("C2"))
    assert notes and "scanner coordinates" in notes[0]


def test_flagged_slices_point_at_the_tumour_in_that_slice(cohort):
    case = open_worklist(cohort).case("C1")
    mask = sitk.ReadImage(str(case.automatic_mask_path))
    flagged = flagged_slices(case, mask)
    assert [f["slice"] for f in flagged] == [4, 0]
    # slice 4: tumour centre at x = y = 11.5 voxels (1 mm) -> LPS (11.5, 11.5, 16) -> RAS (-11.5, -11.5, 16)
    assert flagged[0]["ras"] == pytest.approx([-11.5, -11.5, 16.0])
    assert flagged[1]["ras"] == pytest.approx([-11.5, -11.5, 0.0])  # no tumour there: the slice centre


def test_majority_mask():
    masks = [image(box(0, 2, 0, 2, 0, 2)), image(box(0, 2, 0, 2, 1, 3)), image(box(0, 2, 0, 2, 2, 4))]
    three = sitk.GetArrayFromImage(majority_mask(masks))
    assert three[0, 0].tolist()[:5] == [0, 1, 1, 0, 0]
    two = sitk.GetArrayFromImage(majority_mask(masks[:2]))
    assert two[0, 0].tolist()[:4] == [0, 1, 0, 0]  # two readers: both must agree


def test_export_cases_feeds_extract_and_nnunet(cohort, tmp_path):
    worklist = open_worklist(cohort)
    a, b = worklist.reader("Dr A"), worklist.reader("Dr B")
    a.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16)), rating=1)
    a.mark_reviewed("C2", image(box(1, 5, 8, 16, 8, 14)), rating=2)
    b.mark_reviewed("C1", image(box(1, 5, 8, 16, 10, 18)))
    result = export_reviewed_set(worklist, ["Dr A"], tmp_path / "cases_a", "cases")
    assert result.cases == ["C1", "C2"] and result.excluded == [{"case": "C3", "reason": "dr_a: not started"}]
    out = tmp_path / "cases_a"
    assert sorted(p.name for p in (out / "C1").iterdir()) == ["DWI.nii.gz", "T2W.nii.gz", "clinical.json", "labels"]
    assert read_review(out / "C2" / "labels" / "tumor.nii.gz").reviewer == "Dr A"  # the record still holds
    with (out / "cohort.csv").open() as handle:
        assert [row["case_id"] for row in csv.DictReader(handle)] == ["C1", "C2"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "reviewed-cases" and [c["ratings"] for c in manifest["cases"]] == [[1], [2]]
    assert manifest["cases"][0]["mask"]["reviewer"] == "Dr A"
    from CervicalAILib.export.manifest import verify_manifest

    assert verify_manifest(out / "manifest.json") == []
    with pytest.raises(OutputExistsError):
        export_reviewed_set(worklist, ["Dr A"], out, "cases")
    # consensus of two readers: only C1 was reviewed by both; the majority of two is their overlap
    consensus = export_reviewed_set(worklist, ["Dr A", "Dr B"], tmp_path / "consensus", "cases", consensus="majority")
    assert consensus.cases == ["C1"]
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "consensus" / "C1" / "labels" / "tumor.nii.gz")))
    assert np.array_equal(mask, box(1, 5, 8, 16, 10, 16))
    record = read_review(tmp_path / "consensus" / "C1" / "labels" / "tumor.nii.gz")
    assert record.reviewer == "majority of Dr A, Dr B" and record.reviewed
    with pytest.raises(InputError, match="consensus rule"):
        export_reviewed_set(worklist, ["Dr A", "Dr B"], tmp_path / "x", "cases")


def test_export_nnunet_takes_the_readers_reviewed_masks(cohort, tmp_path):
    worklist = open_worklist(cohort)
    reader = worklist.reader("Dr A")
    reader.mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16)))
    reader.mark_reviewed("C2", image(box(1, 5, 8, 16, 8, 14)))
    result = export_reviewed_set(worklist, ["Dr A"], tmp_path / "nn", "nnunet", dataset_id=77, name="Review")
    dataset = tmp_path / "nn" / "Dataset077_Review"
    assert result.path == dataset and sorted(result.cases) == ["C1", "C2"]
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(dataset / "labelsTr" / "C2.nii.gz")))
    assert np.array_equal(label, box(1, 5, 8, 16, 8, 14))  # the reader's mask, not labels/ of the case
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert {c["mask"]["reviewer"] for c in manifest["cases"]} == {"Dr A"}
    assert {c["case"]: c["source"] for c in manifest["cases"]}["C1"] == str(cohort / "C1")


def test_export_seg_nrrd_per_case(cohort, tmp_path):
    worklist = open_worklist(cohort)
    worklist.reader("Dr A").mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16)))
    result = export_reviewed_set(worklist, ["Dr A"], tmp_path / "nrrd", "seg-nrrd")
    assert result.cases == ["C1"]
    assert sorted(p.name for p in (tmp_path / "nrrd").iterdir()) == ["C1.seg.nrrd", "C1.seg.nrrd.manifest.json"]


def test_cli_status_and_agreement(cohort, tmp_path):
    worklist = open_worklist(cohort)
    worklist.reader("Dr A").mark_reviewed("C1", image(box(1, 5, 8, 16, 8, 16)), rating=3)
    worklist.reader("Dr B").skip("C2", "no DWI")

    def cli(*arguments):
        return subprocess.run([sys.executable, "-m", "CervicalAILib.cli", "review", *arguments], capture_output=True,
                              text=True, timeout=120)

    status = cli("status", str(cohort))
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["case", "automatic", "contour", "dr_a", "dr_b"]
    assert "reviewed [reviewed-1, rating 3]" in lines[1] and "skipped (no DWI)" in lines[2]
    assert "dr_a: 1 of 3 reviewed (2 not started, 1 reviewed)" in status.stdout
    bad = cli("serve", str(cohort), "--reader", "../evil")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "reader name" in bad.stderr
    out = tmp_path / "agreement.csv"
    agree = cli("agreement", str(cohort), "--readers", "Dr A", "Dr B", "--out", str(out))
    assert agree.returncode == 0 and "no case was reviewed by both" in agree.stdout


def test_serve_refuses_a_network_host_without_a_secret(cohort):
    result = subprocess.run([sys.executable, "-m", "CervicalAILib.cli", "review", "serve", str(cohort), "--reader", "A",
                             "--host", "0.0.0.0"], capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in __import__("os").environ.items() if k != "CERVICALAI_REVIEW_TOKEN"})
    assert result.returncode == 2
    assert "--host 0.0.0.0" in result.stderr and "does not start without one" in result.stderr


def test_atomic_working_copy_never_half_written(cohort, monkeypatch):
    reader = open_worklist(cohort).reader("Dr A")
    reader.save_working("C1", image(box(1, 5, 8, 16, 8, 16)))
    before = sha256_file(reader.working_mask_path("C1"))

    def crash(image, path, *args, **kwargs):  # the process dies half way through writing the file
        open(path, "wb").write(b"half a NIfTI")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(sitk, "WriteImage", crash)
    with pytest.raises(KeyboardInterrupt):
        reader.save_working("C1", image(box(1, 5, 8, 16, 8, 12)))
    monkeypatch.undo()
    assert sha256_file(reader.working_mask_path("C1")) == before
    assert [p.name for p in reader.working_mask_path("C1").parent.iterdir()] == ["tumor.nii.gz"]


def test_an_empty_review_needs_rating_4_or_5(cohort):
    reader = open_worklist(cohort).reader("Dr A")
    empty = image(np.zeros((6, 24, 24), np.uint8))
    with pytest.raises(InputError, match="contour is empty"):
        reader.mark_reviewed("C1", empty, rating=1)
    entry = reader.mark_reviewed("C1", empty, rating=4)
    assert entry.record.edit_metrics.dice == 0.0 and entry.rating == 4


def test_export_dicom_seg_references_the_cases_dicom_t2(tmp_path):
    """The same synthetic patient as a NIfTI case folder (the worklist) and as a DICOM study (--dicom-root)."""
    from CervicalAILib.export.dicom_seg import read_dicom_seg
    from CervicalAILib.study.load import load_study

    for fmt, out in (("nifti", tmp_path / "cohort"), ("dicom", tmp_path / "dicom")):
        result = subprocess.run([sys.executable, "-m", "CervicalAILib.cli", "-q", "synth", "--cases", "2", "--seed", "3",
                                 "--matrix-scale", "0.4", "--format", fmt, "--out", str(out)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    worklist = open_worklist(tmp_path / "cohort")
    first, second = worklist.case_ids()
    truth = sitk.ReadImage(str(tmp_path / "cohort" / first / "labels" / "tumor.nii.gz"))
    worklist.reader("Dr A").mark_reviewed(first, truth > 0, rating=1)
    worklist.reader("Dr A").mark_reviewed(second, truth > 0, rating=1)
    import shutil

    shutil.rmtree(tmp_path / "dicom" / second)  # no DICOM study for the second case: left out with the reason
    result = export_reviewed_set(worklist, ["Dr A"], tmp_path / "seg", "dicom-seg", dicom_root=tmp_path / "dicom")
    assert result.cases == [first] and "no DICOM study" in result.excluded[0]["reason"]
    t2 = load_study(tmp_path / "dicom" / first).image("T2W")
    labels = read_dicom_seg(tmp_path / "seg" / f"{first}.seg.dcm", reference=t2)
    assert np.array_equal(sitk.GetArrayFromImage(labels) > 0, sitk.GetArrayFromImage(truth) > 0)


def test_review_server_access_rules():
    import socket

    from CervicalAILib.web.security import check_access, check_port_free, is_loopback, read_token

    local = check_access(None, 8080, None)
    assert local.host == "127.0.0.1" and local.token_generated and len(local.token) >= 16
    assert local.url().startswith("http://127.0.0.1:8080/index.html?secret=")
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    with pytest.raises(InputError, match="does not start without one"):
        check_access("192.168.1.5", 8080, None)
    assert check_access("0.0.0.0", 8080, "s" * 16).token == "s" * 16
    with pytest.raises(InputError, match="at least 16"):
        read_token("short")
    with pytest.raises(InputError, match="may not hold"):
        read_token("a" * 16 + "&x")
    assert read_token(None, None, environ={"CERVICALAI_REVIEW_TOKEN": "e" * 20}) == "e" * 20
    assert read_token(None, None, environ={}) is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(InputError, match="choose another --port"):
            check_port_free("127.0.0.1", taken.getsockname()[1])


def test_one_review_server_per_reader(tmp_path):
    import os

    from CervicalAILib.web.security import claim_reader

    lock = claim_reader(tmp_path / "dr_a")
    assert lock.read_text().strip() == str(os.getpid())
    parent = os.getppid()  # a process that runs: a second server of the same reader is refused
    lock.write_text(f"{parent}\n")
    with pytest.raises(InputError, match="already has a review server"):
        claim_reader(tmp_path / "dr_a", pid=os.getpid())
    lock.write_text("999999999\n")  # left by a server that is gone: taken over
    assert claim_reader(tmp_path / "dr_a").read_text().strip() == str(os.getpid())


def test_prepare_segments_only_the_cases_without_a_contour(cohort, tmp_path, capsys):
    from segmentation_testdata import make_bundle

    from CervicalAILib.cli import main

    bundle = make_bundle(tmp_path / "tiny-seg").path
    before = {name: sha256_file(cohort / name / "segmentation" / "tumor.nii.gz") for name in ("C1", "C2")}
    assert main(["review", "prepare", str(cohort), "--model", str(bundle)]) == 0
    assert "2 case(s) already segmented; segmenting 1" in capsys.readouterr().err
    summary = json.loads((cohort / "C3" / "segmentation" / "segmentation.json").read_text())
    assert summary["model"]["label"] == "tiny-seg@0.0.1" and summary["case"]["case_id"] == "C3"
    written = sitk.ReadImage(str(cohort / "C3" / "segmentation" / "tumor.nii.gz"))
    assert written.GetSize() == sitk.ReadImage(str(cohort / "C3" / "T2W.nii.gz")).GetSize()
    assert {name: sha256_file(cohort / name / "segmentation" / "tumor.nii.gz") for name in ("C1", "C2")} == before
    assert open_worklist(cohort).case("C3").segmentation is not None
