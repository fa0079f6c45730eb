"""Issue 12, as a user meets it on the command line: nothing the reader made is lost, no patient
identity leaks, and no broken input is accepted silently (docs/bad_inputs.md lists every case).

Two small synthetic patients (A, B; matrix scale 0.4) are registered and segmented once with the
shipped models; each test then breaks one thing and runs the real `cervicalai` command (its
`main()`, or a subprocess where the process itself matters: one-line errors, kill -9, another user).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.cli import main
from CervicalAILib.io.images import read_image
from CervicalAILib.review.record import mark_reviewed
from conftest import REPO

KEY = "campaign-secret-key-0123456789"


def run_cli(*argv, check_one_line: bool = True, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """The real `cervicalai` in a subprocess; with `check_one_line`, a failure must be one line, no traceback."""
    result = subprocess.run([sys.executable, "-m", "CervicalAILib.cli", *map(str, argv)], capture_output=True,
                            text=True, env={**os.environ, **(env or {})}, timeout=600, **kwargs)
    if check_one_line and result.returncode != 0:
        assert "Traceback" not in result.stderr, result.stderr
        errors = [line for line in result.stderr.splitlines() if ": error:" in line]
        assert len(errors) == 1, result.stderr
    return result


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if ": error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def tree_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def patients(tmp_path_factory):
    """Patients A and B: case folders, registered case folders, automatic segmentations (shipped model)."""
    from CervicalAILib.research.synth import SynthParams, generate_case
    from CervicalAILib.research.synth.writer import write_case_folder

    root = tmp_path_factory.mktemp("patients")
    world = {"root": root}
    for name, index in (("A", 0), ("B", 1)):
        case = generate_case(index, seed=12, params=SynthParams(matrix_scale=0.4))
        folder = write_case_folder(case, root / name)
        assert main(["study", "register", str(folder), "--out", str(root / f"{name}-reg")]) == 0
        assert main(["segment", str(root / f"{name}-reg"), "--out", str(root / f"{name}-seg")]) == 0
        reader = {k: case.clinical[k] for k in ("age", "figo_stage", "histology", "ln_short_axis_mm", "ln_long_axis_mm")}
        (root / f"{name}-clinical.json").write_text(json.dumps(reader))
        world[name] = folder
    return world


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# ============================================================================ data loss


def test_segment_overwrite_never_replaces_a_reviewed_segmentation(patients, tmp_path, capsys):
    seg = copy_tree(patients["root"] / "A-seg", tmp_path / "seg")
    mark_reviewed(seg / "tumor.nii.gz", "Dr Reader")
    before = tree_hashes(seg)
    status = main(["segment", str(patients["root"] / "A-reg"), "--out", str(seg), "--overwrite"])
    assert status == 2
    line = error_line(capsys)
    assert "reviewed contour" in line and "tumor.nii.gz.review.json" in line
    assert tree_hashes(seg) == before  # the reviewed mask and its record, byte for byte


def test_overwrite_replaces_only_what_the_command_wrote(patients, tmp_path, capsys):
    seg = copy_tree(patients["root"] / "A-seg", tmp_path / "seg")
    (seg / "my-notes.txt").write_text("the reader's notes")
    assert main(["segment", str(patients["root"] / "A-reg"), "--out", str(seg), "--overwrite"]) == 2
    assert "my-notes.txt" in error_line(capsys)
    assert (seg / "my-notes.txt").read_text() == "the reader's notes"
    (seg / "my-notes.txt").unlink()
    assert main(["segment", str(patients["root"] / "A-reg"), "--out", str(seg), "--overwrite"]) == 0  # its own: fine
    reg = copy_tree(patients["root"] / "A-reg", tmp_path / "reg")  # study register: every file of it is its own
    assert main(["study", "register", str(patients["A"]), "--out", str(reg), "--overwrite"]) == 0
    assert json.loads((reg / "case.json").read_text())["grid"] == "T2W"


@pytest.mark.parametrize("command", ["register-same", "register-inside", "segment-inside", "segment-parent",
                                     "predict-into-mask-folder", "extract-cohort-table"])
def test_an_output_never_replaces_or_lands_in_an_input(patients, tmp_path, capsys, command):
    case = copy_tree(patients["A"], tmp_path / "A")
    seg = copy_tree(patients["root"] / "A-seg", tmp_path / "A-seg")
    cohort = tmp_path / "cohort"
    if command == "extract-cohort-table":
        copy_tree(patients["A"], cohort / "A")
        (cohort / "cohort.csv").write_text("case_id,center,lnm\nA,A,1\n")
    argv = {
        "register-same": ["study", "register", case, "--out", case, "--overwrite"],
        "register-inside": ["study", "register", case, "--out", case / "registered", "--overwrite"],
        "segment-inside": ["segment", case, "--out", case / "seg", "--overwrite"],
        "segment-parent": ["segment", case, "--out", tmp_path, "--overwrite"],
        "predict-into-mask-folder": ["predict", case, "--mask", seg / "tumor.nii.gz", "--clinical",
                                     patients["root"] / "A-clinical.json", "--out", seg, "--overwrite"],
        "extract-cohort-table": ["extract", cohort, "--out", cohort / "cohort.csv", "--overwrite", "--no-deep"],
    }[command]
    protected = {p: tree_hashes(p) for p in (case, seg) + ((cohort,) if cohort.exists() else ())}
    assert main([str(a) for a in argv]) == 2
    line = error_line(capsys)
    assert "input" in line and str(argv[argv.index("--out") + 1]) in line
    for folder, hashes in protected.items():
        assert tree_hashes(folder) == hashes, f"{folder} changed"
    assert (case / "generator_truth.json").is_file()


def _run_and_kill(argv: list, delay: float) -> None:
    process = subprocess.Popen([sys.executable, "-m", "CervicalAILib.cli", *map(str, argv)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.kill()  # SIGKILL: no cleanup code runs
        process.wait()


@pytest.mark.parametrize("command", ["segment", "register"])
def test_kill_9_at_any_moment_leaves_the_old_output_or_none(patients, tmp_path, command):
    """A run killed with SIGKILL at several moments: the output is the complete old one, or absent."""
    import time

    if command == "segment":
        argv = ["segment", patients["root"] / "A-reg", "--out", tmp_path / "out", "--overwrite"]
        old_source = patients["root"] / "B-seg"  # a complete earlier output of the same command
    else:
        argv = ["study", "register", patients["A"], "--out", tmp_path / "out", "--overwrite"]
        old_source = patients["root"] / "B-reg"
    started = time.perf_counter()
    assert run_cli(*argv).returncode == 0
    duration = time.perf_counter() - started
    new = tree_hashes(tmp_path / "out")
    old = tree_hashes(old_source)
    outcomes = set()
    for fraction in (0.15, 0.4, 0.7, 0.9, 0.97):
        shutil.rmtree(tmp_path / "out")
        shutil.copytree(old_source, tmp_path / "out")
        _run_and_kill(argv, duration * fraction)
        out = tmp_path / "out"
        if not out.exists():
            outcomes.add("absent")
            continue
        found = tree_hashes(out)
        if found == old:
            outcomes.add("old")
            continue
        # the new output, complete: the same files, each whole (run times and a time-limited registration make
        # the bytes differ between runs, so every file is read back instead of compared)
        assert sorted(found) == sorted(new), f"killed at {fraction:.0%}: a partial output {sorted(found)}"
        for name in found:
            if name.endswith(".json"):
                json.loads((out / name).read_text())
            elif name.endswith(".tfm"):
                sitk.ReadTransform(str(out / name))
            else:
                read_image(out / name)  # refuses a truncated file
        outcomes.add("new")
    assert "old" in outcomes  # the kill happened before the swap at least once (the test can fail)


# ============================================================================ patient identity


PHI = {"PatientName": "Quillfeather^Zebedee", "PatientID": "MRN-77120934", "PositionReferenceIndicator": "ZEBEDEE-IC",
       "SequenceName": "QUILL77120934", "BodyPartExamined": "QUILLFEATHER", "InstitutionName": "St Elsewhereton",
       "SeriesDescription": "t2 tra Zebedee", "StudyDate": "20240315", "AccessionNumber": "ACC881234"}
PHI_TOKENS = ["Quillfeather", "QUILLFEATHER", "Zebedee", "ZEBEDEE", "77120934", "Elsewhereton", "20240315", "ACC881234",
              "PRIVATE-NOTE"]


def phi_study(folder: Path) -> Path:
    """A T2 DICOM series with PHI where the Basic Profile's table does not look: PositionReferenceIndicator,
    SequenceName, BodyPartExamined, an ImageType value, a private tag."""
    from synthetic_dicom import make_series

    series = make_series(folder, n_slices=8, rows=24, columns=28, write=False, patient_id=PHI["PatientID"])
    for number, ds in enumerate(series.datasets, start=1):
        for keyword, value in PHI.items():
            setattr(ds, keyword, value)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "QUILL77120934"]
        ds.private_block(0x0033, "ACME NOTES", create=True).add_new(0x01, "LO", "PRIVATE-NOTE Zebedee")
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / f"IM{number:04d}.dcm", enforce_file_format=True)
    return folder


def assert_no_phi(folder: Path, tokens: list[str]) -> None:
    """No token in any byte of any file (text searched as UTF-8 and Latin-1), nor in PDF text or PNG chunks."""
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        texts = [data]
        if path.suffix == ".gz":
            texts.append(gzip.decompress(data))
        if path.suffix == ".pdf":
            import pypdfium2

            document = pypdfium2.PdfDocument(str(path))
            texts.append("".join(page.get_textpage().get_text_range() for page in document).encode())
        for text in texts:
            for token in tokens:
                for encoding in ("utf-8", "latin-1", "utf-16-le"):
                    assert token.encode(encoding) not in text, f"{token!r} survives in {path.name}"


def test_dicom_seg_deidentify_keeps_only_whitelisted_attributes(tmp_path, capsys):
    import pydicom

    from CervicalAILib.export.reference import load_reference_series

    study = phi_study(tmp_path / "study" / "T2")
    reference = load_reference_series(study).image
    array = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
    array[3:6, 8:15, 9:17] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(reference)
    (tmp_path / "mask").mkdir()
    sitk.WriteImage(mask, str(tmp_path / "mask" / "tumor.nii.gz"))
    mark_reviewed(tmp_path / "mask" / "tumor.nii.gz", "Dr Zebedee Quillfeather")
    out = tmp_path / "partner"
    assert main(["export", "dicom-seg", "--mask", str(tmp_path / "mask" / "tumor.nii.gz"), "--reference-dicom",
                 str(study), "--out", str(out / "seg.dcm"), "--images-out", str(out / "T2"), "--deidentify",
                 "--key", KEY]) == 0
    assert_no_phi(out, PHI_TOKENS + ["Dr Zebedee"])
    for path in [out / "seg.dcm", *sorted((out / "T2").iterdir())]:
        ds = pydicom.dcmread(path)
        assert not any(element.tag.is_private for element in ds.iterall())
        assert ds.get("PositionReferenceIndicator", "") == "" and "BodyPartExamined" not in ds
        assert "SequenceName" not in ds
    manifest = json.loads((out / "seg.dcm.manifest.json").read_text())
    options = [option["code"] for option in manifest["deidentified"]["options_applied"]]
    assert options == ["113100", "113105", "113107"]  # Basic Profile, Clean Descriptors, Modified Dates
    assert "whitelist" in manifest["deidentified"]["attributes"]
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed: `make test` installs it (apt-get install dicom3tools)")
    for path in [out / "seg.dcm", sorted((out / "T2").iterdir())[0]]:
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
        assert errors == [], f"{path.name}: {errors}"


def test_nnunet_deidentify_manifest_holds_no_case_folder_name(patients, tmp_path):
    from CervicalAILib.io.case import write_case

    cases = tmp_path / "site"
    good = copy_tree(patients["A"], cases / "DOE_JOHN_MRN5550123")
    (good / "clinical.json").write_text(json.dumps({"patient_id": "MRN5550123"}))
    t2 = sitk.ReadImage(str(good / "T2W.nii.gz"))
    write_case(cases / "ROE_JANE_MRN5550456", {"T2W": t2})  # no label: excluded, with its reason
    out = tmp_path / "raw"
    assert main(["export", "nnunet", str(good), str(cases / "ROE_JANE_MRN5550456"), "--out", str(out),
                 "--dataset-id", "77", "--name", "Partner", "--registration", "none", "--deidentify",
                 "--key", KEY]) == 0
    manifest = json.loads((out / "Dataset077_Partner" / "manifest.json").read_text())
    assert manifest["excluded"] and manifest["excluded"][0]["case"].startswith("CAI-")
    assert_no_phi(out, ["DOE_JOHN", "ROE_JANE", "MRN5550123", "MRN5550456", str(tmp_path)])


def test_report_pseudonym_hides_reviewer_review_time_and_case(patients, tmp_path):
    import re

    case = copy_tree(patients["A"], tmp_path / "SMITH_ANNA_MRN4412")
    seg = copy_tree(patients["root"] / "A-seg", tmp_path / "seg")
    mark_reviewed(seg / "tumor.nii.gz", "Dr Oswin Penhallow")
    reviewed_at = json.loads((seg / "tumor.nii.gz.review.json").read_text())["reviewed_at"]
    assert main(["predict", str(case), "--mask", str(seg / "tumor.nii.gz"), "--clinical",
                 str(patients["root"] / "A-clinical.json"), "--out", str(tmp_path / "readout")]) == 0
    created = json.loads((tmp_path / "readout" / "readout.json").read_text())["created"]
    out = tmp_path / "report"
    out.mkdir()
    assert main(["report", str(tmp_path / "readout"), "--out", str(out / "report.html"), "--pdf", "--pseudonym",
                 "--key", KEY]) == 0
    exact_times = [reviewed_at, reviewed_at[:10], created[:16].replace("T", " "), created[:10]]
    assert_no_phi(out, ["Penhallow", "Oswin", "SMITH_ANNA", "MRN4412", *exact_times])
    # the nomogram and key image carry no identity in their pixels: the same under another case name
    other = copy_tree(case, tmp_path / "X")
    assert main(["predict", str(other), "--mask", str(seg / "tumor.nii.gz"), "--clinical",
                 str(patients["root"] / "A-clinical.json"), "--out", str(tmp_path / "readout-x")]) == 0
    assert main(["report", str(tmp_path / "readout-x"), "--out", str(tmp_path / "x.html"), "--pseudonym",
                 "--key", KEY, "--patient-id", "SMITH_ANNA_MRN4412"]) == 0
    images = [re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", p.read_text())
              for p in (out / "report.html", tmp_path / "x.html")]
    assert images[0] and images[0] == images[1]


def test_seg_nrrd_pseudonym_is_the_patients_not_the_folders(patients, tmp_path, capsys):
    """Two patients' masks, both in a folder called `seg`: two pseudonyms; a mask nobody can place: refused."""
    pseudonyms = []
    for name in ("A", "B"):
        seg = copy_tree(patients["root"] / f"{name}-seg", tmp_path / name / "seg")
        out = tmp_path / f"{name}.seg.nrrd"
        assert main(["export", "seg-nrrd", "--mask", str(seg / "tumor.nii.gz"), "--out", str(out), "--deidentify",
                     "--key", KEY]) == 0
        pseudonyms.append(json.loads(Path(f"{out}.manifest.json").read_text())["cases"][0]["case"])
    assert pseudonyms[0] != pseudonyms[1]
    bare = tmp_path / "bare" / "seg"
    bare.mkdir(parents=True)
    shutil.copy(patients["root"] / "A-seg" / "tumor.nii.gz", bare / "tumor.nii.gz")
    assert main(["export", "seg-nrrd", "--mask", str(bare / "tumor.nii.gz"), "--out", str(tmp_path / "c.seg.nrrd"),
                 "--deidentify", "--key", KEY]) == 2
    assert "cannot tell which patient" in error_line(capsys)
    assert not (tmp_path / "c.seg.nrrd").exists()


# ============================================================================ silently accepted bad input


def _nifti_header_edit(path: Path, offset: int, fmt: str, value) -> None:
    """Write one field of a NIfTI-1 header as stored (nibabel would repair it on saving)."""
    data = bytearray(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
    struct.pack_into("<" + fmt, data, offset, *(value if isinstance(value, tuple) else (value,)))
    path.write_bytes(gzip.compress(bytes(data)) if path.suffix == ".gz" else bytes(data))


@pytest.mark.parametrize("defect,message", [
    ("truncated", "truncated"),
    ("nan", "NaN"),
    ("zero-spacing", "voxel size (pixdim)"),
    ("qform-sform", "qform and sform disagree"),
    ("blank", "blank"),
    ("absurd-spacing", "not plausible"),
])
def test_a_broken_t2w_file_is_refused_naming_it(patients, tmp_path, capsys, defect, message):
    case = copy_tree(patients["A"], tmp_path / "A")
    t2 = case / "T2W.nii.gz"
    image = sitk.ReadImage(str(t2))
    if defect == "truncated":
        data = t2.read_bytes()
        t2.write_bytes(data[: len(data) * 2 // 3])
    elif defect == "nan":
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        array[5, 20:24, 20:24] = np.nan
        broken = sitk.GetImageFromArray(array)
        broken.CopyInformation(image)
        sitk.WriteImage(broken, str(t2))
    elif defect == "zero-spacing":
        _nifti_header_edit(t2, 76 + 4 * 3, "f", 0.0)  # pixdim[3]
    elif defect == "qform-sform":
        _nifti_header_edit(t2, 280 + 4 * 3, "f", 35.0)  # srow_x[3]: the sform origin moved 35 mm from the qform's
    elif defect == "blank":
        sitk.WriteImage(image * 0, str(t2))
    elif defect == "absurd-spacing":
        image.SetSpacing((1e4, 1e4, 5.0))
        sitk.WriteImage(image, str(t2))
    if defect == "blank":  # inspect lists it as a problem; using it is refused
        assert main(["study", "inspect", str(case)]) == 0
        assert "the image is blank" in capsys.readouterr().out
        commands = [["segment", str(case), "--out", str(tmp_path / "seg")]]
    else:
        commands = [["study", "inspect", str(case)], ["segment", str(case), "--out", str(tmp_path / "seg")]]
    for argv in commands:
        assert main(argv) == 2
        line = error_line(capsys)
        assert "T2W.nii.gz" in line and message in line
    assert not (tmp_path / "seg").exists()


def test_a_nan_mask_is_refused_not_read_as_zero(patients, tmp_path, capsys):
    mask = sitk.ReadImage(str(patients["root"] / "A-seg" / "tumor.nii.gz"))
    array = sitk.GetArrayFromImage(mask).astype(np.float32)
    z, y, x = np.argwhere(array > 0)[0]
    array[z, y, x] = np.nan  # one tumour voxel NaN: ITK alone would read it as 0, and the volume would change
    broken = sitk.GetImageFromArray(array)
    broken.CopyInformation(mask)
    sitk.WriteImage(broken, str(tmp_path / "nan-mask.nii.gz"))
    assert main(["export", "nifti", "--mask", str(tmp_path / "nan-mask.nii.gz"), "--out", str(tmp_path / "o.nii.gz")]) == 2
    assert "nan-mask.nii.gz" in (line := error_line(capsys)) and "NaN" in line


def test_another_patients_mask_or_transforms_are_refused(patients, tmp_path, capsys):
    clinical = patients["root"] / "A-clinical.json"
    argv = ["predict", str(patients["A"]), "--clinical", str(clinical), "--out", str(tmp_path / "r")]
    assert main(argv + ["--mask", str(patients["root"] / "B-seg" / "tumor.nii.gz")]) == 2
    assert "another patient" in error_line(capsys)
    assert main(argv + ["--mask", str(patients["B"] / "labels" / "tumor.nii.gz")]) == 2
    assert "another patient" in error_line(capsys)
    assert main(argv + ["--mask", str(patients["root"] / "A-seg" / "tumor.nii.gz"), "--transforms",
                        str(patients["root"] / "B-reg")]) == 2
    assert "transforms" in (line := error_line(capsys)) and "another patient" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_predict_refuses_a_case_resampled_onto_the_t2wi_grid_and_names_the_native_study(patients, tmp_path, capsys,
                                                                                        legacy):
    """Features are computed on each sequence's own grid: `study register`'s output (case.json says grid T2W; an
    older output without case.json is known by its registration.json) is refused, naming the native study to use;
    the native study with the registered folder as --transforms is the same patient, without warnings."""
    reg = patients["root"] / "A-reg"
    assert json.loads((reg / "case.json").read_text())["grid"] == "T2W"
    if legacy:
        reg = copy_tree(reg, tmp_path / "A-reg-legacy")
        (reg / "case.json").unlink()
    argv = ["--mask", str(patients["root"] / "A-seg" / "tumor.nii.gz"), "--clinical",
            str(patients["root"] / "A-clinical.json")]
    for transforms in ([], ["--transforms", str(reg)]):
        assert main(["predict", str(reg), *argv, *transforms, "--out", str(tmp_path / "refused")]) == 2
        line = error_line(capsys)
        assert f"{reg}: its sequences were resampled onto the T2WI grid" in line
        assert f"use the native study {patients['A'].resolve()} with --transforms {reg}" in line
    assert not (tmp_path / "refused").exists()
    assert main(["predict", str(patients["A"]), *argv, "--transforms", str(reg), "--out", str(tmp_path / "r")]) == 0
    readout = json.loads((tmp_path / "r" / "readout.json").read_text())
    assert not any("another" in w or "no record" in w for w in readout["warnings"])
    # segment's output holds the same transforms, recorded against the native sequences they move
    assert main(["predict", str(patients["A"]), *argv, "--transforms", str(patients["root"] / "A-seg"), "--out",
                 str(tmp_path / "r2")]) == 0
    again = json.loads((tmp_path / "r2" / "readout.json").read_text())
    assert again["lnm"]["probability"] == readout["lnm"]["probability"] and again["warnings"] == readout["warnings"]


@pytest.mark.parametrize("kind,message", [("organs", "different labels"), ("whole-image", "not a tumour contour"),
                                          ("probability", "probability map")])
def test_a_mask_that_cannot_be_the_tumour_is_refused(patients, tmp_path, capsys, kind, message):
    t2 = sitk.ReadImage(str(patients["A"] / "T2W.nii.gz"))
    array = np.zeros(sitk.GetArrayViewFromImage(t2).shape, np.float32)
    z, y, x = array.shape
    if kind == "organs":
        array[2:8, 10:30, 10:30] = 1
        array[2:8, 30:40, 10:30] = 2
        array[8:12, 10:40, 10:40] = 3
    elif kind == "whole-image":
        array[:] = 1
    else:
        array[4:8, 20:30, 20:30] = 0.8
        array[3, 20:30, 20:30] = 0.3
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(t2)
    path = tmp_path / f"{kind}.nii.gz"
    sitk.WriteImage(mask, str(path))
    assert main(["predict", str(patients["A"]), "--mask", str(path), "--clinical",
                 str(patients["root"] / "A-clinical.json"), "--out", str(tmp_path / "r")]) == 2
    assert message in (line := error_line(capsys)) and path.name in line
    assert main(["export", "nifti", "--mask", str(path), "--out", str(tmp_path / "o.nii.gz")]) == 2
    assert message in error_line(capsys)


def test_an_edited_shipped_bundle_is_refused_and_a_copy_is_marked_user_supplied(patients, tmp_path, capsys, monkeypatch):
    from CervicalAILib.bundles import catalog

    shipped = REPO / "Resources" / "Models" / "cervix-tumor-seg-mpmri"
    copy = copy_tree(shipped, tmp_path / "Models" / "cervix-tumor-seg-mpmri")
    manifest = json.loads((copy / "bundle.json").read_text())
    manifest["postprocessing"]["threshold"] = 0.97  # same name and version, another model
    (copy / "bundle.json").write_text(json.dumps(manifest, indent=2))
    # as a user-supplied bundle: runs, and says so in the summary and on the console
    out = tmp_path / "seg"
    assert main(["segment", str(patients["root"] / "A-reg"), "--out", str(out), "--model", str(copy)]) == 0
    assert "(user-supplied)" in capsys.readouterr().out
    model = json.loads((out / "segmentation.json").read_text())["model"]
    assert model["source"] == "user-supplied" and model["label"] == f"cervix-tumor-seg-mpmri@{manifest['version']}"
    assert main(["export", "nifti", "--mask", str(out / "tumor.nii.gz"), "--out", str(tmp_path / "m.nii.gz")]) == 0
    export = json.loads((tmp_path / "m.nii.gz.manifest.json").read_text())
    assert export["cases"][0]["mask"]["automatic_model_source"] == "user-supplied"
    # the same edit inside the extension's own model folder: refused
    monkeypatch.setattr(catalog, "shipped_models_dirs", lambda: [REPO / "Resources" / "Models", tmp_path / "Models"])
    monkeypatch.setattr(catalog, "catalog_path", lambda: REPO / "Resources" / "Models" / "catalog.json")
    assert main(["segment", str(patients["root"] / "A-reg"), "--out", str(tmp_path / "seg2"), "--model",
                 str(copy)]) == 2
    assert "was modified" in error_line(capsys)


def test_the_catalogue_pins_every_shipped_bundle():
    """The catalogue matches the bundles in Resources/Models (regenerate: tools/update_model_catalog.py)."""
    result = subprocess.run([sys.executable, str(REPO / "tools" / "update_model_catalog.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    from CervicalAILib.bundles.catalog import default_entry, default_purposes
    from CervicalAILib.bundles.format import load_bundle

    for folder in (default_entry(purpose).folder for purpose in default_purposes()):
        assert load_bundle(REPO / "Resources" / "Models" / folder).source == "shipped"
    engine_schemas = sorted((REPO / "CervicalAI" / "CervicalAILib" / "contracts" / "schemas").glob("*.schema.json"))
    assert [p.name for p in engine_schemas] == ["model-catalog.schema.json", "readout.schema.json",
                                                "review.schema.json", "segmentation.schema.json"]
    for engine in engine_schemas:  # the copies in docs/ for readers are the engine's
        assert (REPO / "docs" / "schemas" / engine.name).read_bytes() == engine.read_bytes()


@pytest.fixture(scope="module")
def readout(patients, tmp_path_factory):
    folder = tmp_path_factory.mktemp("readout") / "readout"
    assert main(["predict", str(patients["A"]), "--mask", str(patients["root"] / "A-seg" / "tumor.nii.gz"),
                 "--clinical", str(patients["root"] / "A-clinical.json"), "--out", str(folder)]) == 0
    return folder


@pytest.mark.parametrize("edit,message", [
    (lambda r: r["lnm"].update(probability=7.5), "lnm.probability: 7.5 is above the maximum 1"),
    (lambda r: r["segmentation"].update(volume_ml=-3), "segmentation.volume_ml: -3 is below the minimum 0"),
    (lambda r: r.update(lnm_probability=0.9), "contradicts itself"),
    (lambda r: r["lnm"]["validated"][-1].update(auc=0.99), "differ from the shipped model"),
    (lambda r: r["clinical"].update(ln_short_axis_mm=True), "clinical.ln_short_axis_mm: true is not number"),
])
def test_the_report_refuses_an_impossible_readout(readout, tmp_path, capsys, edit, message):
    folder = copy_tree(readout, tmp_path / "readout")
    document = json.loads((folder / "readout.json").read_text())
    edit(document)
    (folder / "readout.json").write_text(json.dumps(document))
    assert main(["report", str(folder), "--out", str(tmp_path / "report.html")]) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("values,message", [
    ({"ln_short_axis_mm": True}, "ln_short_axis_mm=true is a yes/no value, not a number"),
    ({"ln_shortaxis_mm": 7.5}, "did you mean 'ln_short_axis_mm'"),
    ({"Age": 52}, "did you mean 'age'"),
    ({"figo_stage": 2}, "figo_stage=2 must be one of"),
    ({"center": {"name": "A"}}, "must be a single value"),
])
def test_clinical_values_of_the_wrong_type_or_name_are_refused(patients, tmp_path, capsys, values, message):
    (tmp_path / "clinical.json").write_text(json.dumps({"age": 50, **values}))
    assert main(["predict", str(patients["A"]), "--mask", str(patients["root"] / "A-seg" / "tumor.nii.gz"),
                 "--clinical", str(tmp_path / "clinical.json"), "--out", str(tmp_path / "r")]) == 2
    assert message in error_line(capsys)


def test_impossible_option_values_are_refused(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("y,score\n" + "".join(f"{i % 2},{(i % 7) / 7}\n" for i in range(40)))
    result = run_cli("evaluate", table, "--label", "y", "--score", "score", "--hl-groups", "0", "--out", tmp_path / "e")
    assert result.returncode == 2 and "--hl-groups" in result.stderr and "0 is out of range" in result.stderr
    assert not (tmp_path / "e").exists()
    result = run_cli("extract", tmp_path, "--out", tmp_path / "f.csv", "--jobs", "0")
    assert result.returncode == 2 and "--jobs" in result.stderr


def test_icc_on_too_few_cases_is_refused_and_few_cases_are_warned(tmp_path):
    rng = np.random.default_rng(1)
    for n, expected in ((2, 2), (8, 0)):
        a = rng.normal(size=(n, 3))
        for name, values in (("a", a), ("b", a + rng.normal(scale=0.1, size=a.shape))):
            lines = ["case_id,T2W_f1,T2W_f2,T2W_f3"] + [f"c{i}," + ",".join(f"{v:.4f}" for v in row)
                                                       for i, row in enumerate(values)]
            (tmp_path / f"{name}{n}.csv").write_text("\n".join(lines) + "\n")
        result = run_cli("icc", tmp_path / f"a{n}.csv", tmp_path / f"b{n}.csv", "--out", tmp_path / f"icc{n}")
        assert result.returncode == expected, result.stderr
        if n == 2:
            assert "share 2 case(s)" in result.stderr
        else:
            assert "warning: only 8 cases" in result.stderr


# ============================================================================ unclear errors


def test_dicom_with_zero_pixel_spacing_is_one_line_naming_the_series(tmp_path):
    import pydicom
    from synthetic_dicom import make_series

    series = make_series(tmp_path / "study", n_slices=6, rows=16, columns=16, names="ordered")
    for path in series.files:
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = ["0", "0"]
        ds.save_as(path)
    result = run_cli("study", "register", tmp_path / "study", "--out", tmp_path / "case")
    assert result.returncode == 2 and "PixelSpacing 0.0000, 0.0000 mm is not positive" in result.stderr


@pytest.mark.parametrize("defect,message", [("missing-slice", "about 1 slice missing"),
                                            ("zero-orientation", "ImageOrientationPatient")])
def test_an_unusable_t2_series_is_named_with_its_defect(tmp_path, defect, message):
    import pydicom
    from synthetic_dicom import make_series

    series = make_series(tmp_path / "study", n_slices=8, rows=16, columns=16, names="ordered",
                         drop_slices=(3,) if defect == "missing-slice" else ())
    if defect == "zero-orientation":
        for path in series.files:
            ds = pydicom.dcmread(path)
            ds.ImageOrientationPatient = [0, 0, 0, 0, 0, 0]
            ds.save_as(path)
    result = run_cli("segment", tmp_path / "study", "--out", tmp_path / "seg")
    assert result.returncode == 2
    assert "series 2 (t2_tse_tra) looks like the T2W but cannot be used" in result.stderr and message in result.stderr


def test_out_below_a_file_and_an_unwritable_folder_are_one_line(patients, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    result = run_cli("segment", patients["root"] / "A-reg", "--out", tmp_path / "file.txt" / "seg")
    assert result.returncode == 2 and "is a file, not a folder" in result.stderr
    locked = tmp_path / "locked"
    locked.mkdir()
    # read-only: permission bits for a normal user; root ignores them, so the folder is made immutable
    as_root = os.geteuid() == 0
    lock = ["chattr", "+i", str(locked)] if as_root else None
    if as_root and (shutil.which("chattr") is None or subprocess.run(lock, capture_output=True).returncode != 0):
        pytest.skip("cannot make a read-only folder here (root, and chattr +i is not available)")
    if not as_root:
        os.chmod(locked, 0o555)
    try:
        result = run_cli("segment", patients["root"] / "A-reg", "--out", locked / "seg")
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        else:
            os.chmod(locked, 0o755)
    assert result.returncode == 2
    assert "permission denied" in result.stderr or "operation not permitted" in result.stderr, result.stderr
    assert not any(locked.iterdir())


def test_a_full_disk_is_one_line_and_leaves_no_output(patients, tmp_path):
    import resource

    def limit_file_size():  # writes beyond 64 KiB fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    result = run_cli("study", "register", patients["A"], "--out", tmp_path / "case", preexec_fn=limit_file_size)
    assert result.returncode == 2
    assert "incomplete (disk full" in result.stderr or "file too large" in result.stderr
    assert not (tmp_path / "case").exists()
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]


def test_a_bug_is_one_line_and_the_traceback_comes_with_debug(tmp_path, monkeypatch):
    """An unexpected exception (a bug) prints one line naming it; --debug shows the traceback."""
    result = run_cli("report", tmp_path, "--out", tmp_path / "r.html", env={"CERVICALAI_DEBUG": ""})
    assert result.returncode == 2 and "no readout.json here" in result.stderr
    script = ("import sys; from CervicalAILib import cli; from CervicalAILib.cli import report;"
              "report.run = lambda args: 1 / 0; sys.exit(cli.main(sys.argv[1:]))")
    plain = subprocess.run([sys.executable, "-c", script, "report", str(tmp_path), "--out", "x.html"],
                           capture_output=True, text=True)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr and "internal error (ZeroDivisionError" in plain.stderr
    debug = subprocess.run([sys.executable, "-c", script, "--debug", "report", str(tmp_path), "--out", "x.html"],
                           capture_output=True, text=True)
    assert "Traceback" in debug.stderr


def test_top_level_help_imports_no_command_module():
    """`cervicalai --help` is built from the COMMANDS table: no command module (nor the engine behind it) loads."""
    script = ("import sys; from CervicalAILib import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
              "print(sorted(m for m in sys.modules if m.startswith('CervicalAILib.cli.')))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "train-seg" in result.stdout and result.stdout.strip().splitlines()[-1] == "[]"


def test_a_command_that_is_not_installed_is_left_out_of_help_and_refused_in_one_line(monkeypatch, capsys):
    from CervicalAILib import cli

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, ("ghost", "ghost_command", "a command left out of this build")])
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "ghost" not in capsys.readouterr().out
    assert cli.main(["-q", "ghost", "x"]) == 2
    assert capsys.readouterr().err.strip() == "cervicalai ghost: error: this command is not part of this installation"
