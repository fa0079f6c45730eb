#!/usr/bin/env python3
"""Hostile-input campaign: every case runs the real `cervicalai` command and is classified.

    python Testing/campaign/run_campaign.py                 # all cases (5-15 min on 2 cores)
    python Testing/campaign/run_campaign.py --only dicom    # cases whose id or area contains "dicom"
    python Testing/campaign/run_campaign.py --list          # what would run
    python Testing/campaign/run_campaign.py --json out.json # also write every result

Each case copies what it needs from a base set (two synthetic patients A and B, registered and
segmented with the shipped models; a synthetic DICOM study; feature tables) into its own folder,
breaks one thing, runs the command in a subprocess and classifies the outcome:

    clear error          exit 2 (3 for a cohort with failed cases), one line naming the file or value and
                         the words the case expects, no traceback, no half-made output left behind
    correct acceptance   exit 0 and the result checks out (and, where the input is usable but odd, the
                         expected warning is shown)
    wrong result         a bad input accepted silently, a wrong value, a good input refused, a half-made output
    data lost or leaked  any file that existed before (inputs, reviewed contours, other outputs) changed or
                         vanished, or a patient identity found in a de-identified output (every byte, PDF text,
                         gzip content, DICOM private tags)
    unclear              a traceback, another exit status, several error lines, or a message that does not
                         name what is wrong

The counts by outcome are printed at the end (docs/bad_inputs.md quotes them).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "CervicalAI"))
sys.path.insert(0, str(REPO / "Testing" / "python"))

OUTCOMES = ("clear error", "correct acceptance", "wrong result", "data lost or leaked", "unclear")
KEY = "campaign-secret-key-0123456789"
PYTHON = sys.executable


# =============================================================================== framework


@dataclass
class Step:
    argv: list
    may_change: list[Path] = field(default_factory=list)  # paths the command may write or replace
    verify: Callable[[], str | None] | None = None  # accepted: None when the result is right, else the problem
    phi: list[str] = field(default_factory=list)  # tokens no byte under `phi_in` may hold
    phi_in: list[Path] = field(default_factory=list)
    env: dict = field(default_factory=dict)
    preexec: Callable | None = None
    kill_after: float | None = None  # SIGKILL after this many seconds
    cleanup: Callable | None = None
    cwd: Path | None = None


@dataclass
class Case:
    id: str
    area: str
    expect: str  # "error", "accept" or "warn"
    what: str
    make: Callable[[Base, Path], Step]
    mention: tuple[str, ...] = ()


CASES: list[Case] = []


def case(id: str, area: str, expect: str, what: str, mention: tuple[str, ...] | str = ()):
    def register(make):
        CASES.append(Case(id, area, expect, what, make, (mention,) if isinstance(mention, str) else tuple(mention)))
        return make
    return register


def snapshot(folder: Path) -> dict[str, str]:
    result = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            result[path.relative_to(folder).as_posix()] = "link:" + os.readlink(path)
        elif path.is_file():
            try:
                result[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                result[path.relative_to(folder).as_posix()] = "unreadable"
    return result


def phi_hits(paths: list[Path], tokens: list[str]) -> list[str]:
    hits = []
    files = [p for root in paths if root.exists() for p in ([root] if root.is_file() else root.rglob("*"))
             if p.is_file()]
    for path in files:
        data = path.read_bytes()
        blobs = [data]
        if path.name.endswith(".gz"):
            try:
                blobs.append(gzip.decompress(data))
            except (OSError, EOFError):
                pass
        if path.suffix == ".nrrd" and b"encoding: gzip" in data[:4000]:
            try:
                blobs.append(gzip.decompress(data[data.index(b"\n\n") + 2:]))
            except (OSError, EOFError, ValueError):
                pass
        if path.suffix == ".pdf":
            try:
                import pypdfium2

                document = pypdfium2.PdfDocument(str(path))
                blobs.append("".join(page.get_textpage().get_text_range() for page in document).encode())
            except Exception:  # noqa: BLE001 - a PDF that cannot be read is still grepped as bytes
                pass
        for token in tokens:
            for blob in blobs:
                if any(token.encode(enc) in blob for enc in ("utf-8", "latin-1", "utf-16-le")) or \
                        token.lower().encode() in blob.lower():
                    hits.append(f"{token!r} in {path.name}")
                    break
    return hits


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": error:" in line or line.startswith("cervicalai: error:")]


def classify(case: Case, step: Step, rc: int, out: str, err: str, before: dict, folder: Path) -> tuple[str, str]:
    after = snapshot(folder)
    allowed = [Path(os.path.abspath(p)) for p in step.may_change]
    lost = []
    for name, digest in before.items():
        path = Path(os.path.abspath(folder / name))  # not resolve(): a case may hold a link loop
        if any(path == a or path.is_relative_to(a) for a in allowed):
            continue
        if after.get(name) != digest:
            lost.append(name if name in after else f"{name} (gone)")
    if lost:
        return "data lost or leaked", f"changed or deleted: {', '.join(lost[:4])}"
    if step.phi:
        hits = phi_hits(step.phi_in, step.phi)
        if hits:
            return "data lost or leaked", "identity in output: " + "; ".join(hits[:4])
    lines = error_lines(err)
    if rc == 3:  # extract: the table was written, the failed cases are listed one line each
        lines = [line for line in err.splitlines() if line.startswith("FAILED ")][:1] or lines
    text = " ".join(lines)
    if "Traceback" in err:
        return "unclear", "traceback: " + err.strip().splitlines()[-1][:200]
    if case.expect == "error":
        if rc == 0:
            return "wrong result", "accepted silently (exit 0)"
        if rc not in (2, 3) or len(lines) != 1:
            return "unclear", f"exit {rc}, {len(lines)} error line(s): {err.strip()[-300:]}"
        missing = [word for word in case.mention if word.lower() not in text.lower()]
        if missing:
            return "unclear", f"message does not name {missing}: {text[:300]}"
        new = [name for name in after if name not in before and not any(part.startswith(".") for part in Path(name).parts)]
        if new and rc == 2:
            return "wrong result", f"refused, but left output behind: {', '.join(new[:3])}"
        return "clear error", text
    if rc != 0:
        return "wrong result", f"a usable input refused (exit {rc}): {(text or err.strip()[-300:])[:300]}"
    if case.expect == "warn":
        missing = [word for word in case.mention if word.lower() not in (out + err).lower()]
        if missing:
            return "wrong result", f"accepted without the warning {missing}"
    problem = step.verify() if step.verify else None
    if problem:
        return "wrong result", problem
    if case.expect == "warn":  # the line that carries the warning
        said = next(line for line in (out + "\n" + err).splitlines() if case.mention[0].lower() in line.lower())
        return "correct acceptance", "accepted, with: " + said.strip()[:300]
    if step.kill_after is not None:
        return "correct acceptance", ("after the kill the output is the old one or a complete new one, never a "
                                      "partial one (checked file by file)")
    return "correct acceptance", "accepted: " + (out.strip().splitlines() or [""])[-1][:200]


def run_case(case: Case, base: Base, work: Path) -> dict:
    folder = work / "cases" / case.id
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    try:
        step = case.make(base, folder)
    except Exception as exc:  # noqa: BLE001 - a broken case set-up is reported, not fatal
        return {"id": case.id, "area": case.area, "outcome": "set-up failed", "detail": repr(exc), "seconds": 0}
    before = snapshot(folder)
    argv = [PYTHON, "-m", "CervicalAILib.cli", *map(str, step.argv)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "CervicalAI"), "CERVICALAI_DEBUG": "", **step.env}
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                   cwd=step.cwd or folder, preexec_fn=step.preexec)
        try:
            out, err = process.communicate(timeout=step.kill_after or 900)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            if step.kill_after is None:
                err += "\n(timed out)"
        rc = process.returncode
        if step.kill_after is not None and rc < 0:
            rc = 0  # killed on purpose: what counts is what it left
        outcome, detail = classify(case, step, rc, out, err, before, folder)
    finally:
        if step.cleanup:
            step.cleanup()
    return {"id": case.id, "area": case.area, "expect": case.expect, "what": case.what, "outcome": outcome,
            "detail": detail, "exit": rc, "seconds": round(time.perf_counter() - started, 1)}


# =============================================================================== the base set


class Base:
    """What the cases copy from: built once under WORK/base (reused by later runs with the same shipped models)."""

    def __init__(self, work: Path):
        self.root = work / "base"
        self.models = REPO / "Resources" / "Models"

    def cli(self, *argv) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO / "CervicalAI")}
        result = subprocess.run([PYTHON, "-m", "CervicalAILib.cli", *map(str, argv)], capture_output=True, text=True,
                                env=env)
        if result.returncode != 0:
            raise RuntimeError(f"base set: cervicalai {' '.join(map(str, argv))} failed:\n{result.stderr[-2000:]}")

    def build(self) -> Base:
        r = self.root
        # its segmentations and readout are the reference the cases compare with, and they come from the shipped
        # models: a base set made by other models (the catalog lists every bundle's hashes) is made again
        models = hashlib.sha256((self.models / "catalog.json").read_bytes()).hexdigest()
        ready = r / "READY"
        if not ready.is_file() or ready.read_text(encoding="utf-8").split()[-1:] != [models]:
            shutil.rmtree(r, ignore_errors=True)
            r.mkdir(parents=True)
            self.cli("synth", "--cases", 2, "--seed", 12, "--matrix-scale", 0.4, "--out", r / "cohort")
            self.cli("synth", "--cases", 1, "--seed", 13, "--matrix-scale", 0.4, "--format", "dicom", "--out",
                     r / "dicom-cohort")
            for name, folder in (("A", "SYN12-A-0001"), ("B", "SYN12-A-0002")):
                shutil.copytree(r / "cohort" / folder, r / name)
                self.cli("study", "register", r / name, "--out", r / f"{name}-reg")
                self.cli("segment", r / f"{name}-reg", "--out", r / f"{name}-seg")
                clinical = json.loads((r / name / "clinical.json").read_text())
                reader = {k: clinical[k] for k in ("age", "figo_stage", "histology", "ln_short_axis_mm",
                                                   "ln_long_axis_mm", "ln_necrosis", "center") if k in clinical}
                (r / f"{name}-clinical.json").write_text(json.dumps(reader, indent=1))
            self.cli("predict", r / "A", "--mask", r / "A-seg" / "tumor.nii.gz", "--clinical", r / "A-clinical.json",
                     "--transforms", r / "A-reg", "--out", r / "A-readout")
            dicom_case = r / "dicom-cohort" / "SYN13-A-0001"
            self.cli("study", "register", dicom_case / "dicom", "--out", r / "D-reg")
            self.cli("segment", r / "D-reg", "--out", r / "D-seg")
            _feature_tables(r / "tables")
            ready.write_text(f"base set complete, shipped models (catalog.json sha256) {models}\n", encoding="utf-8")
        if not (r / "timings.json").is_file():
            timings = {}  # how long a run takes here: the kill -9 cases kill at fractions of it
            for name, argv in (("segment", ["segment", r / "A-reg", "--out", r / "timing"]),
                               ("register", ["study", "register", r / "A", "--out", r / "timing"])):
                started = time.perf_counter()
                self.cli(*argv)
                timings[name] = time.perf_counter() - started
                shutil.rmtree(r / "timing")
            (r / "timings.json").write_text(json.dumps(timings))
        self.A, self.B = r / "A", r / "B"
        self.Areg, self.Breg, self.Aseg, self.Bseg, self.Dseg = (r / "A-reg", r / "B-reg", r / "A-seg", r / "B-seg",
                                                                  r / "D-seg")
        self.Aclin, self.Areadout = r / "A-clinical.json", r / "A-readout"
        self.dicom = r / "dicom-cohort" / "SYN13-A-0001" / "dicom"
        # the axial T2WI series (generator 2 names it 02_T2_TSE_[OBL_]TRA[_FS] and adds 03_T2_TSE_SAG)
        self.dicom_t2 = next(p for p in sorted(self.dicom.glob("02_T2_TSE_*")) if p.is_dir() and "SAG" not in p.name)
        self.dicom_case = r / "dicom-cohort" / "SYN13-A-0001"
        self.tables = r / "tables"
        self.volume_A = json.loads((self.Aseg / "segmentation.json").read_text())["volume_ml"]
        self.timings = json.loads((r / "timings.json").read_text())
        self.lnm_A = json.loads((self.Areadout / "readout.json").read_text())["lnm"]["probability"]
        return self


def _feature_tables(folder: Path) -> None:
    """Two readers' feature tables (30 cases) and a score table for icc/evaluate/fit cases."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    n = 30
    truth = rng.normal(size=(n, 6))
    for name, noise in (("reader1", 0.1), ("reader2", 0.1)):
        values = truth + rng.normal(scale=noise, size=truth.shape)
        lines = ["case_id," + ",".join(f"T2W_original_firstorder_F{i}" for i in range(6))]
        lines += [f"C{i:03d}," + ",".join(f"{v:.5f}" for v in row) for i, row in enumerate(values)]
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    y = (truth[:, 0] + rng.normal(scale=0.8, size=n) > 0).astype(int)
    p = 1 / (1 + np.exp(-truth[:, 0]))
    lines = ["case_id,lnm,score,label_text"] + [f"C{i:03d},{y[i]},{p[i]:.4f},{'Poor' if y[i] else 'Good'}"
                                                 for i in range(n)]
    (folder / "scores.csv").write_text("\n".join(lines) + "\n")


# =============================================================================== helpers


def cp(source: Path, target: Path) -> Path:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return target


NIFTI_FIELDS = {"dim": (40, "8h"), "datatype": (70, "h"), "pixdim": (76, "8f"), "vox_offset": (108, "f"),
                "scl_slope": (112, "f"), "qform_code": (252, "h"), "sform_code": (254, "h"), "quatern": (256, "6f"),
                "srow_x": (280, "4f"), "srow_y": (296, "4f"), "srow_z": (312, "4f")}


def nifti_edit(path: Path, field_name: str, change: Callable[[list], list]) -> None:
    """Change a NIfTI-1 header field as stored (nibabel and ITK would repair it when writing)."""
    compressed = path.name.endswith(".gz")
    data = bytearray(gzip.decompress(path.read_bytes()) if compressed else path.read_bytes())
    offset, fmt = NIFTI_FIELDS[field_name]
    values = list(struct.unpack_from("<" + fmt, data, offset))
    struct.pack_into("<" + fmt, data, offset, *change(values))
    path.write_bytes(gzip.compress(bytes(data)) if compressed else bytes(data))


def image_like(reference: Path, array: np.ndarray, path: Path, spacing=None) -> Path:
    ref = sitk.ReadImage(str(reference))
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(ref)
    if spacing is not None:
        image.SetSpacing(spacing)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def array_of(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def seg_volume_is(folder: Path, expected: float, tolerance: float = 0.02) -> Callable[[], str | None]:
    def check():
        summary = json.loads((folder / "segmentation.json").read_text())
        if abs(summary["volume_ml"] - expected) > tolerance * max(expected, 1e-6):
            return f"tumour volume {summary['volume_ml']:.2f} mL, expected {expected:.2f} mL"
        return None
    return check


def files_exist(*paths: Path) -> Callable[[], str | None]:
    def check():
        missing = [str(p) for p in paths if not p.exists()]
        return f"missing output {missing}" if missing else None
    return check


def readout_value(folder: Path, expected_lnm: float) -> Callable[[], str | None]:
    def check():
        readout = json.loads((folder / "readout.json").read_text())
        if abs(readout["lnm"]["probability"] - expected_lnm) > 0.02:
            return f"LNM probability {readout['lnm']['probability']:.3f}, expected {expected_lnm:.3f}"
        return None
    return check


def dicom_copy(b: Base, d: Path, change: Callable | None = None, name: str = "study") -> Path:
    """A copy of the synthetic DICOM study's T2 series (other series dropped), changed by `change(ds, index)`."""
    import pydicom

    target = d / name / "T2"
    target.mkdir(parents=True)
    for index, path in enumerate(sorted(b.dicom_t2.iterdir())):
        ds = pydicom.dcmread(path)
        if change is not None:
            ds = change(ds, index)
            if ds is None:
                continue
        ds.save_as(target / path.name, enforce_file_format=True)
    return target


def readout_copy(b: Base, d: Path, change: Callable[[dict], None]) -> Path:
    folder = cp(b.Areadout, d / "readout")
    document = json.loads((folder / "readout.json").read_text())
    change(document)
    (folder / "readout.json").write_text(json.dumps(document))
    return folder


def predict_argv(b: Base, d: Path, case: Path | None = None, mask: Path | None = None, clinical: Path | None = None,
                 extra: list | None = None) -> list:
    return ["predict", case or b.A, "--mask", mask or b.Aseg / "tumor.nii.gz", "--clinical", clinical or b.Aclin,
            "--transforms", b.Areg, "--out", d / "readout", *(extra or [])]


def clinical_file(b: Base, d: Path, change: Callable[[dict], dict] | None = None, text: str | bytes | None = None) -> Path:
    path = d / "clinical.json"
    if text is not None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    else:
        values = json.loads(b.Aclin.read_text())
        path.write_text(json.dumps(change(values) if change else values))
    return path


def mark_reviewed(mask: Path, reviewer: str = "Dr Reader") -> None:
    from CervicalAILib.review.record import mark_reviewed as mark

    mark(mask, reviewer)


# =============================================================================== cases: image files


def _broken_t2(change: Callable[[Path], None]):
    def make(b: Base, d: Path) -> Step:
        case = cp(b.Areg, d / "A")
        change(case / "T2W.nii.gz")
        return Step(["segment", case, "--out", d / "seg"], may_change=[d / "seg"])
    return make


case("nii-truncated-half", "image files", "error", "T2W.nii.gz cut to half its bytes", ("T2W.nii.gz", "truncated"))(
    _broken_t2(lambda p: truncate(p, 0.5)))
case("nii-truncated-99", "image files", "error", "T2W.nii.gz missing its last 1%", ("T2W.nii.gz", "truncated"))(
    _broken_t2(lambda p: truncate(p, 0.99)))
case("nii-gzip-flipped", "image files", "error", "a byte in the middle of the gzip stream changed", "T2W.nii.gz")(
    _broken_t2(lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2] + b"\x00\xff\x13"
                                      + p.read_bytes()[len(p.read_bytes()) // 2 + 3:])))
case("nii-empty", "image files", "error", "T2W.nii.gz of 0 bytes", ("T2W.nii.gz", "empty"))(
    _broken_t2(lambda p: p.write_bytes(b"")))
case("nii-random-bytes", "image files", "error", "random bytes named T2W.nii.gz", "T2W.nii.gz")(
    _broken_t2(lambda p: p.write_bytes(os.urandom(5000))))
case("nii-text", "image files", "error", "a text file named T2W.nii.gz", "T2W.nii.gz")(
    _broken_t2(lambda p: p.write_text("this is not an image\n" * 100)))
case("nii-png", "image files", "error", "a PNG renamed T2W.nii.gz", "T2W.nii.gz")(
    _broken_t2(lambda p: p.write_bytes((REPO / "docs" / "figures").glob("*.png").__next__().read_bytes())))
case("nii-header-only", "image files", "error", "T2W.nii.gz holding the 352-byte header only", ("T2W.nii.gz", "truncated"))(
    _broken_t2(lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:352]))))
case("nii-nan", "image files", "error", "NaN voxels in the T2WI (NIfTI float)", ("T2W.nii.gz", "NaN"))(
    _broken_t2(lambda p: image_like(p, np.where(np.indices(array_of(p).shape)[0] == 4, np.nan,
                                                 array_of(p)).astype(np.float32), p)))
case("nii-inf", "image files", "error", "an infinite voxel in the T2WI", ("T2W.nii.gz", "infinite"))(
    _broken_t2(lambda p: image_like(p, np.where(np.arange(array_of(p).size).reshape(array_of(p).shape) == 77, np.inf,
                                                 array_of(p)).astype(np.float32), p)))
case("nii-zero-slice-spacing", "image files", "error", "pixdim[3] = 0 (ITK would read 1 mm)", ("T2W.nii.gz", "voxel size"))(
    _broken_t2(lambda p: nifti_edit(p, "pixdim", lambda v: v[:3] + [0.0] + v[4:])))
case("nii-negative-spacing", "image files", "error", "pixdim[1] negative", ("T2W.nii.gz", "voxel size"))(
    _broken_t2(lambda p: nifti_edit(p, "pixdim", lambda v: v[:1] + [-0.9] + v[2:])))
case("nii-nan-spacing", "image files", "error", "pixdim[2] NaN", ("T2W.nii.gz", "voxel size"))(
    _broken_t2(lambda p: nifti_edit(p, "pixdim", lambda v: v[:2] + [float("nan")] + v[3:])))
case("nii-qform-sform-disagree", "image files", "error", "sform origin 40 mm away from the qform's",
     ("T2W.nii.gz", "qform and sform disagree"))(
    _broken_t2(lambda p: nifti_edit(p, "srow_z", lambda v: v[:3] + [v[3] + 40.0])))
case("nii-qform-sform-axes", "image files", "error", "sform voxel size 20% larger than the qform's",
     ("T2W.nii.gz", "qform and sform disagree"))(
    _broken_t2(lambda p: nifti_edit(p, "srow_x", lambda v: [x * 1.2 for x in v[:3]] + v[3:])))
case("nii-sform-singular", "image files", "error", "sform with a zero column", ("T2W.nii.gz", "singular"))(
    _broken_t2(lambda p: nifti_edit(p, "srow_z", lambda v: [0.0, 0.0, 0.0, v[3]])))
case("nii-quaternion-invalid", "image files", "error", "qform quaternion longer than 1 (not a rotation)",
     ("T2W.nii.gz", "qform"))(
    _broken_t2(lambda p: nifti_edit(p, "quatern", lambda v: [0.9, 0.9, 0.9] + v[3:])))
case("nii-huge-dims", "image files", "error", "header announces 100000 x 100000 x 1000 voxels", "T2W.nii.gz")(
    _broken_t2(lambda p: nifti_edit(p, "dim", lambda v: [3, 30000, 30000, 1000, 1, 1, 1, 1])))
case("nii-zero-dim", "image files", "error", "a dimension of size 0", "T2W.nii.gz")(
    _broken_t2(lambda p: nifti_edit(p, "dim", lambda v: [3, v[1], 0, v[3], 1, 1, 1, 1])))
case("nii-bad-datatype", "image files", "error", "datatype code 9999", ("T2W.nii.gz", "datatype"))(
    _broken_t2(lambda p: nifti_edit(p, "datatype", lambda v: [9999])))
case("nii-vox-offset-inside-header", "image files", "error", "vox_offset 10 (inside the header)", "T2W.nii.gz")(
    _broken_t2(lambda p: nifti_edit(p, "vox_offset", lambda v: [10.0])))
case("nii-absurd-spacing", "image files", "error", "voxel size 10 m", ("T2W.nii.gz", "not plausible"))(
    _broken_t2(lambda p: image_like(p, array_of(p), p, spacing=(1e4, 1e4, 5.0))))
case("nii-tiny-spacing", "image files", "error", "voxel size 1e-6 mm", ("T2W.nii.gz", "not plausible"))(
    _broken_t2(lambda p: image_like(p, array_of(p), p, spacing=(1e-6, 1e-6, 1e-6))))
case("nii-blank", "image files", "error", "an all-zero T2WI", ("T2W.nii.gz", "blank"))(
    _broken_t2(lambda p: image_like(p, np.zeros_like(array_of(p)), p)))
case("nii-4d", "image files", "error", "a 4D T2WI (two volumes)", ("T2W.nii.gz", "4D"))(
    _broken_t2(lambda p: sitk.WriteImage(sitk.JoinSeries([sitk.ReadImage(str(p))] * 2), str(p))))
case("nii-2d", "image files", "error", "a single 2D slice as the T2WI", ("T2W.nii.gz", "2D"))(
    _broken_t2(lambda p: sitk.WriteImage(sitk.ReadImage(str(p))[:, :, 3], str(p))))
case("nii-rgb", "image files", "error", "an RGB T2WI", ("T2W.nii.gz", "colour"))(
    _broken_t2(lambda p: sitk.WriteImage(sitk.Compose([sitk.Cast(sitk.ReadImage(str(p)), sitk.sitkUInt8)] * 3), str(p))))
case("nii-far-origin", "image files", "error", "origin 1e9 mm from the scanner centre", ("T2W.nii.gz", "origin"))(
    _broken_t2(lambda p: nifti_edit(p, "srow_x", lambda v: v[:3] + [1e9])))


def _second_t2(b: Base, d: Path) -> Step:
    case = cp(b.Areg, d / "A")
    sitk.WriteImage(sitk.ReadImage(str(case / "T2W.nii.gz")), str(case / "T2W.nrrd"))
    return Step(["segment", case, "--out", d / "seg"], may_change=[d / "seg"])


case("case-two-t2w-files", "image files", "error", "T2W.nii.gz and T2W.nrrd in one case folder", ("T2W", "keep one"))(
    _second_t2)


def _dangling_t2(b: Base, d: Path) -> Step:
    case = cp(b.Areg, d / "A")
    (case / "T2W.nii.gz").unlink()
    (case / "T2W.nii.gz").symlink_to(d / "nowhere.nii.gz")
    return Step(["segment", case, "--out", d / "seg"], may_change=[d / "seg"])


case("case-dangling-symlink", "image files", "error", "T2W.nii.gz a link to nothing", ("T2W.nii.gz", "leads nowhere"))(
    _dangling_t2)


def _looping_link(b: Base, d: Path) -> Step:
    case = cp(b.Areg, d / "A")
    (case / "ADC.nii.gz").unlink()
    (case / "ADC.nii.gz").symlink_to(case / "ADC.nii.gz")
    return Step(["segment", case, "--out", d / "seg"], may_change=[d / "seg"])


case("case-symlink-loop", "image files", "error", "ADC.nii.gz a link to itself", "ADC.nii.gz")(_looping_link)


def _nrrd_truncated(b: Base, d: Path) -> Step:
    folder = d / "files"
    folder.mkdir()
    sitk.WriteImage(sitk.ReadImage(str(b.Areg / "T2W.nii.gz")), str(folder / "t2.nrrd"), True)
    truncate(folder / "t2.nrrd", 0.6)
    return Step(["study", "inspect", folder / "t2.nrrd"])


case("nrrd-truncated", "image files", "error", "a truncated .nrrd given as a file", ("t2.nrrd", "truncated"))(_nrrd_truncated)


def _mha_truncated(b: Base, d: Path) -> Step:
    folder = d / "files"
    folder.mkdir()
    sitk.WriteImage(sitk.ReadImage(str(b.Areg / "T2W.nii.gz")), str(folder / "t2.mha"), False)
    truncate(folder / "t2.mha", 0.6)
    return Step(["study", "inspect", folder / "t2.mha"])


case("mha-truncated", "image files", "error", "a truncated .mha given as a file", ("t2.mha", "truncated"))(_mha_truncated)


def _nhdr_missing_data(b: Base, d: Path) -> Step:
    folder = d / "files"
    folder.mkdir()
    sitk.WriteImage(sitk.ReadImage(str(b.Areg / "T2W.nii.gz")), str(folder / "t2.nhdr"))
    for raw in folder.glob("t2.raw*"):
        raw.unlink()
    return Step(["study", "inspect", folder / "t2.nhdr"])


case("nhdr-missing-data-file", "image files", "error", "a .nhdr whose data file is gone", ("t2.nhdr", "does not exist"))(
    _nhdr_missing_data)


def _nrrd_nan(b: Base, d: Path) -> Step:
    case = cp(b.Areg, d / "A")
    p = case / "T2W.nii.gz"
    array = array_of(p).astype(np.float32)
    array[3, 10, 10] = np.nan
    image_like(p, array, case / "T2W.nrrd")
    p.unlink()
    return Step(["segment", case, "--out", d / "seg"], may_change=[d / "seg"])


case("nrrd-nan", "image files", "error", "a NaN voxel in a NRRD T2WI", ("T2W.nrrd", "NaN"))(_nrrd_nan)


def _good_uncompressed(b: Base, d: Path) -> Step:
    case = cp(b.Areg, d / "A")
    for role in ("T2W", "ADC", "DWI", "CET1"):
        sitk.WriteImage(sitk.ReadImage(str(case / f"{role}.nii.gz")), str(case / f"{role}.nii"), False)
        (case / f"{role}.nii.gz").unlink()
    return Step(["segment", case, "--out", d / "seg"], may_change=[d / "seg"],
                verify=seg_volume_is(d / "seg", b.volume_A))


case("ok-uncompressed-nifti", "image files", "accept", "the same case as uncompressed .nii")(_good_uncompressed)


def _good_case(b: Base, d: Path) -> Step:
    case = cp(b.Areg, d / "A")
    return Step(["segment", case, "--out", d / "seg"], may_change=[d / "seg"], verify=seg_volume_is(d / "seg", b.volume_A))


case("ok-registered-case", "image files", "accept", "an unchanged registered case")(_good_case)


def _predict_dicom_study(b: Base, d: Path) -> Step:
    clinical = json.loads((b.dicom_case / "clinical.json").read_text())
    reader = {k: clinical[k] for k in ("age", "figo_stage", "histology", "ln_short_axis_mm", "ln_long_axis_mm")}
    (d / "clinical.json").write_text(json.dumps(reader))

    def check() -> str | None:
        readout = json.loads((d / "readout" / "readout.json").read_text())
        t2 = readout["inputs"]["images"]["T2W"]
        if t2["source"] != "dicom" or not t2["n_files"] or not 0 < (readout["lnm"]["probability"] or -1) < 1:
            return f"readout of the DICOM study: T2W input {t2}, LNM probability {readout['lnm']['probability']}"
        return None
    return Step(["predict", b.dicom, "--mask", b.Dseg / "tumor.nii.gz", "--clinical", d / "clinical.json",
                 "--transforms", b.Dseg, "--out", d / "readout"], may_change=[d / "readout"], verify=check)


case("ok-predict-dicom-study", "dicom", "accept", "the readout of a DICOM study (the native series, with the "
     "segmentation run's transforms)")(_predict_dicom_study)


def _good_odd_name(b: Base, d: Path) -> Step:
    case = cp(b.Areg, d / "Müller Jürgen (2) 患者")
    return Step(["segment", case, "--out", d / "résultat 結果"], may_change=[d / "résultat 結果"],
                verify=seg_volume_is(d / "résultat 結果", b.volume_A))


case("ok-unicode-paths", "paths", "accept", "case and output folders with spaces, accents and CJK characters")(_good_odd_name)


def _t2_only(b: Base, d: Path) -> Step:
    case = d / "A"
    case.mkdir()
    cp(b.Areg / "T2W.nii.gz", case / "T2W.nii.gz")
    return Step(["segment", case, "--out", d / "seg"], may_change=[d / "seg"], verify=files_exist(d / "seg" / "tumor.nii.gz"))


case("ok-t2-only", "image files", "warn", "a case with the T2WI alone (T2-only model)", "T2WI-only")(_t2_only)


def _sagittal_t2(b: Base, d: Path) -> Step:
    """The study's sagittal T2WI given as the T2WI: A's T2WI resampled onto a sagittal slab over its box."""
    from segmentation_testdata import sagittal_grid

    t2 = sitk.ReadImage(str(b.Areg / "T2W.nii.gz"))
    grid = sagittal_grid(t2, pixel_mm=float(min(t2.GetSpacing()[:2])))
    sagittal = sitk.Resample(t2, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    case = d / "A"
    case.mkdir()
    sitk.WriteImage(sagittal, str(case / "T2W.nii.gz"))
    return Step(["segment", case, "--out", d / "seg"], may_change=[d / "seg"])


case("t2-sagittal", "image files", "warn", "the sagittal T2WI given as the T2WI (segmented, with a warning)",
     ("slice plane", "sagittal"))(_sagittal_t2)


def _blank_adc(b: Base, d: Path) -> Step:
    case = cp(b.Areg, d / "A")
    image_like(case / "ADC.nii.gz", np.zeros_like(array_of(case / "ADC.nii.gz")), case / "ADC.nii.gz")
    return Step(["segment", case, "--out", d / "seg"], may_change=[d / "seg"])


case("blank-adc", "image files", "error", "an all-zero ADC map", ("ADC.nii.gz", "blank"))(_blank_adc)


def _truncated_in_cohort(b: Base, d: Path) -> Step:
    cohort = d / "cohort"
    cp(b.A, cohort / "A")
    cp(b.B, cohort / "B")
    truncate(cohort / "B" / "T2W.nii.gz", 0.5)
    (cohort / "cohort.csv").write_text("case_id,center,lnm\nA,A,1\nB,A,0\n")
    return Step(["extract", cohort, "--out", d / "features.csv", "--no-deep", "--roles", "T2W"],
                may_change=[d / "features.csv", d / "features.csv.json", d / "features.csv.parts"])


case("extract-truncated-case", "image files", "error", "one truncated T2WI in a cohort for extract",
     ("FAILED", "truncated"))(_truncated_in_cohort)


def _inspect_truncated(b: Base, d: Path) -> Step:
    case = cp(b.A, d / "A")
    truncate(case / "T2W.nii.gz", 0.7)
    return Step(["study", "inspect", case])


case("inspect-truncated", "image files", "error", "study inspect on a case with a truncated T2WI", ("T2W.nii.gz", "truncated"))(
    _inspect_truncated)


# =============================================================================== cases: DICOM


def _dicom_case(change, **kw):
    def make(b: Base, d: Path) -> Step:
        study = dicom_copy(b, d, change).parent
        return Step(["study", "register", study, "--out", d / "case"], may_change=[d / "case"])
    return make


def _set(attribute, value):
    def change(ds, index):
        setattr(ds, attribute, value)
        return ds
    return change


case("dicom-zero-spacing", "dicom", "error", "PixelSpacing 0\\0", ("PixelSpacing", "not positive"))(
    _dicom_case(_set("PixelSpacing", ["0", "0"])))
case("dicom-huge-spacing", "dicom", "error", "PixelSpacing 1e6 mm", ("PixelSpacing", "not plausible"))(
    _dicom_case(_set("PixelSpacing", ["1000000", "1000000"])))
case("dicom-text-spacing", "dicom", "error", "PixelSpacing 'abc'", "PixelSpacing")(
    _dicom_case(lambda ds, i: (ds.__setitem__(0x00280030, _raw_element(0x00280030, "DS", b"abc\\def ")) or ds)))
case("dicom-zero-orientation", "dicom", "error", "ImageOrientationPatient all zero", "ImageOrientationPatient")(
    _dicom_case(_set("ImageOrientationPatient", [0, 0, 0, 0, 0, 0])))
case("dicom-missing-slice", "dicom", "error", "one slice of the T2 series deleted", ("slice", "missing"))(
    _dicom_case(lambda ds, i: None if i == 8 else ds))
def _dicom_duplicate_position(b: Base, d: Path) -> Step:
    """Slice 10 given the position of slice 9, read from its file (oblique series with gaps included)."""
    import pydicom

    previous = pydicom.dcmread(sorted(b.dicom_t2.iterdir())[8], stop_before_pixels=True).ImagePositionPatient
    study = dicom_copy(b, d, lambda ds, i: (setattr(ds, "ImagePositionPatient", previous) or ds) if i == 9 else ds)
    return Step(["study", "register", study.parent, "--out", d / "case"], may_change=[d / "case"])


case("dicom-duplicate-position", "dicom", "error", "two slices at one position", "duplicated")(_dicom_duplicate_position)
case("dicom-no-position", "dicom", "error", "ImagePositionPatient removed", "ImagePositionPatient")(
    _dicom_case(lambda ds, i: (delattr(ds, "ImagePositionPatient") or ds)))
case("dicom-ct-only", "dicom", "error", "the series relabelled CT", ("CT", "MR"))(_dicom_case(_set("Modality", "CT")))
case("dicom-rows-mismatch", "dicom", "error", "one slice with another matrix", ("series", "T2"))(
    _dicom_case(lambda ds, i: (_shrink(ds) if i == 5 else ds)))


def _raw_element(tag: int, vr: str, value: bytes):
    """An element holding bytes pydicom would refuse to write as a value (the file stores them as they are)."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    return RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _shrink(ds):
    pixels = ds.pixel_array[:-2, :-2].copy()
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = pixels.tobytes()
    return ds


def _dicom_truncated_file(b: Base, d: Path) -> Step:
    study = dicom_copy(b, d).parent
    victim = sorted((study / "T2").iterdir())[6]
    truncate(victim, 0.3)
    return Step(["study", "register", study, "--out", d / "case"], may_change=[d / "case"])


case("dicom-truncated-file", "dicom", "error", "one T2 slice file cut short", ("T2",))(_dicom_truncated_file)


def _dicom_two_patients(b: Base, d: Path) -> Step:
    dicom_copy(b, d, name="study")
    dicom_copy(b, d, _set("PatientID", "OTHER-PATIENT"), name="other")
    shutil.move(str(d / "other" / "T2"), str(d / "study" / "T2-other"))
    return Step(["study", "register", d / "study", "--out", d / "case"], may_change=[d / "case"])


case("dicom-two-patients", "dicom", "error", "two patients' series in one folder", ("patients", "--study"))(_dicom_two_patients)


def _dicom_empty(b: Base, d: Path) -> Step:
    (d / "empty").mkdir()
    return Step(["study", "inspect", d / "empty"])


case("dicom-empty-folder", "dicom", "error", "an empty folder", "empty")(_dicom_empty)


def _dicom_only_junk(b: Base, d: Path) -> Step:
    (d / "junk").mkdir()
    for i in range(5):
        (d / "junk" / f"file{i}.dcm").write_bytes(b"DICM" + os.urandom(500))
    return Step(["study", "inspect", d / "junk"])


case("dicom-only-junk", "dicom", "error", "files named .dcm holding random bytes", ("unreadable",))(_dicom_only_junk)


def _dicom_ok(b: Base, d: Path) -> Step:
    study = dicom_copy(b, d).parent
    return Step(["study", "inspect", study, "--json"], verify=None)


case("ok-dicom-inspect", "dicom", "accept", "a valid T2 DICOM series")(_dicom_ok)


def _dicom_role_unknown(b: Base, d: Path) -> Step:
    study = dicom_copy(b, d).parent
    return Step(["study", "inspect", study, "--role", "99=T2W"])


case("dicom-role-unknown-series", "options", "error", "--role names a series that does not exist", "99")(_dicom_role_unknown)


def _dicom_role_bad(b: Base, d: Path) -> Step:
    study = dicom_copy(b, d).parent
    return Step(["study", "inspect", study, "--role", "2=FLAIR"])


case("dicom-role-unknown-role", "options", "error", "--role gives an unknown role", ("FLAIR", "role"))(_dicom_role_bad)


# =============================================================================== cases: masks


def _mask_case(make_mask: Callable[[Base, Path], Path], command: str = "predict"):
    def make(b: Base, d: Path) -> Step:
        mask = make_mask(b, d)
        if command == "predict":
            return Step(predict_argv(b, d, mask=mask), may_change=[d / "readout"])
        return Step(["export", "nifti", "--mask", mask, "--out", d / "out" / "tumor.nii.gz"], may_change=[d / "out"])
    return make


def _organ_map(b: Base, d: Path) -> Path:
    return cp(b.A / "labels" / "organs.nii.gz", d / "organs.nii.gz")


def _whole(b: Base, d: Path) -> Path:
    return image_like(b.A / "T2W.nii.gz", np.ones_like(array_of(b.A / "T2W.nii.gz"), dtype=np.uint8), d / "whole.nii.gz")


def _probability(b: Base, d: Path) -> Path:
    return cp(b.Aseg / "tumor_probability.nii.gz", d / "probability.nii.gz")


def _probability_float(b: Base, d: Path) -> Path:
    array = array_of(b.Aseg / "tumor.nii.gz").astype(np.float32) * 0.7
    return image_like(b.Aseg / "tumor.nii.gz", array, d / "soft.nii.gz")


def _empty_mask(b: Base, d: Path) -> Path:
    return image_like(b.Aseg / "tumor.nii.gz", np.zeros_like(array_of(b.Aseg / "tumor.nii.gz")), d / "empty.nii.gz")


def _tiny_mask(b: Base, d: Path) -> Path:
    array = np.zeros_like(array_of(b.Aseg / "tumor.nii.gz"))
    array[5, 30, 30:33] = 1
    return image_like(b.Aseg / "tumor.nii.gz", array, d / "tiny.nii.gz")


def _negative(b: Base, d: Path) -> Path:
    array = array_of(b.Aseg / "tumor.nii.gz").astype(np.int16)
    array[array > 0] = -1
    return image_like(b.Aseg / "tumor.nii.gz", array, d / "negative.nii.gz")


def _nan_mask(b: Base, d: Path) -> Path:
    array = array_of(b.Aseg / "tumor.nii.gz").astype(np.float32)
    z, y, x = np.argwhere(array > 0)[0]
    array[z, y, x] = np.nan
    return image_like(b.Aseg / "tumor.nii.gz", array, d / "nan-mask.nii.gz")


def _nan_mask_nrrd(b: Base, d: Path) -> Path:
    array = array_of(b.Aseg / "tumor.nii.gz").astype(np.float32)
    z, y, x = np.argwhere(array > 0)[0]
    array[z, y, x] = np.nan
    return image_like(b.Aseg / "tumor.nii.gz", array, d / "nan-mask.nrrd")


def _shifted(b: Base, d: Path) -> Path:
    image = sitk.ReadImage(str(b.Aseg / "tumor.nii.gz"))
    image.SetOrigin(tuple(o + 5000 for o in image.GetOrigin()))
    sitk.WriteImage(image, str(d / "far.nii.gz"))
    return d / "far.nii.gz"


def _half_out(b: Base, d: Path) -> Path:
    image = sitk.ReadImage(str(b.Aseg / "tumor.nii.gz"))
    array = sitk.GetArrayFromImage(image)
    zyx = np.argwhere(array > 0)
    centre = zyx.mean(axis=0)
    shift = (image.GetSize()[0] - centre[2]) * image.GetSpacing()[0]
    origin = list(image.GetOrigin())
    origin[0] += shift  # the tumour's centre moved to the image's edge: half of it outside
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(d / "half.nii.gz"))
    return d / "half.nii.gz"


def _mask_2d(b: Base, d: Path) -> Path:
    image = sitk.ReadImage(str(b.Aseg / "tumor.nii.gz"))
    sitk.WriteImage(image[:, :, 6], str(d / "flat.nii.gz"))
    return d / "flat.nii.gz"


def _mask_folder(b: Base, d: Path) -> Path:
    (d / "tumor.nii.gz").mkdir()
    return d / "tumor.nii.gz"


def _mask_missing(b: Base, d: Path) -> Path:
    return d / "no-such-mask.nii.gz"


def _mask_truncated(b: Base, d: Path) -> Path:
    return truncate(cp(b.Aseg / "tumor.nii.gz", d / "tumor.nii.gz"), 0.5)


for _id, _make, _mention, _what in [
    ("mask-organ-map", _organ_map, ("organs.nii.gz", "labels"), "the organ label map given as the tumour mask"),
    ("mask-whole-image", _whole, ("whole.nii.gz", "not a tumour contour"), "a mask filling the whole image"),
    ("mask-probability-uint8", _probability, ("probability.nii.gz",), "the probability map (0-255) given as the mask"),
    ("mask-probability-float", _probability_float, ("soft.nii.gz", "probability map"), "a fractional (0.7) mask"),
    ("mask-empty", _empty_mask, ("empty",), "an empty mask"),
    ("mask-tiny", _tiny_mask, ("voxel",), "a mask of 3 voxels"),
    ("mask-negative", _negative, ("negative.nii.gz", "negative"), "a mask holding -1"),
    ("mask-nan", _nan_mask, ("nan-mask.nii.gz", "NaN"), "a NaN voxel in a NIfTI mask (ITK reads 0)"),
    ("mask-nan-nrrd", _nan_mask_nrrd, ("nan-mask.nrrd", "NaN"), "a NaN voxel in a NRRD mask"),
    ("mask-off-image", _shifted, ("overlap",), "a mask 5 m away from the T2WI"),
    ("mask-half-outside", _half_out, ("outside",), "a mask half outside the T2WI"),
    ("mask-2d", _mask_2d, ("flat.nii.gz", "2D"), "a single-slice mask"),
    ("mask-is-folder", _mask_folder, ("tumor.nii.gz", "folder"), "--mask names a folder"),
    ("mask-missing", _mask_missing, ("no-such-mask.nii.gz", "not found"), "--mask names nothing"),
    ("mask-truncated", _mask_truncated, ("tumor.nii.gz", "truncated"), "a truncated mask file"),
]:
    case(f"predict-{_id}", "masks", "error", _what, _mention)(_mask_case(_make, "predict"))
for _id, _make, _mention, _what in [
    ("mask-organ-map", _organ_map, ("organs.nii.gz", "labels"), "the organ label map exported as the tumour"),
    ("mask-whole-image", _whole, ("not a tumour contour",), "a whole-image mask exported"),
    ("mask-probability-float", _probability_float, ("probability map",), "a fractional mask exported"),
    ("mask-nan", _nan_mask, ("NaN",), "a NaN mask exported"),
    ("mask-empty", _empty_mask, ("empty",), "an empty mask exported"),
]:
    case(f"export-{_id}", "masks", "error", _what, _mention)(_mask_case(_make, "export"))


def _other_patient_seg(b: Base, d: Path) -> Step:
    return Step(predict_argv(b, d, mask=b.Bseg / "tumor.nii.gz"), may_change=[d / "readout"])


case("predict-other-patients-seg", "masks", "error", "patient B's automatic mask for patient A", ("another patient",))(
    _other_patient_seg)


def _other_patient_label(b: Base, d: Path) -> Step:
    return Step(predict_argv(b, d, mask=b.B / "labels" / "tumor.nii.gz"), may_change=[d / "readout"])


case("predict-other-patients-label", "masks", "error", "patient B's labels/tumor.nii.gz for patient A", ("another patient",))(
    _other_patient_label)


def _other_patient_transforms(b: Base, d: Path) -> Step:
    argv = predict_argv(b, d)
    argv[argv.index("--transforms") + 1] = b.Breg
    return Step(argv, may_change=[d / "readout"])


case("predict-other-patients-transforms", "masks", "error", "--transforms of patient B for patient A",
     ("transforms", "another patient"))(_other_patient_transforms)


def _registered_as_case(b: Base, d: Path) -> Step:
    return Step(predict_argv(b, d, case=b.Areg), may_change=[d / "readout"])


case("predict-registered-folder", "masks", "error", "the `study register` output (T2WI grid) given as the case",
     ("resampled onto the T2WI grid", "use the native study"))(_registered_as_case)


def _corrupt_transform(b: Base, d: Path) -> Step:
    reg = cp(b.Areg, d / "reg")
    (reg / "transforms" / "ADC.tfm").write_text("#Insight Transform File V1.0\nTransform: Nonsense\nParameters: x y\n")
    argv = predict_argv(b, d)
    argv[argv.index("--transforms") + 1] = reg
    return Step(argv, may_change=[d / "readout"])


case("predict-corrupt-transform", "masks", "error", "an unreadable transforms/ADC.tfm", ("ADC.tfm",))(_corrupt_transform)


def _missing_transforms(b: Base, d: Path) -> Step:
    argv = predict_argv(b, d)
    argv[argv.index("--transforms") + 1] = d / "nowhere"
    return Step(argv, may_change=[d / "readout"])


case("predict-transforms-missing", "masks", "error", "--transforms names nothing", ("transforms", "not found"))(
    _missing_transforms)


def _empty_transforms(b: Base, d: Path) -> Step:
    (d / "empty").mkdir()
    argv = predict_argv(b, d)
    argv[argv.index("--transforms") + 1] = d / "empty"
    return Step(argv, may_change=[d / "readout"])


case("predict-transforms-empty", "masks", "error", "--transforms names a folder without transforms", ("transforms",))(
    _empty_transforms)


def _mask_255(b: Base, d: Path) -> Step:
    array = array_of(b.Aseg / "tumor.nii.gz").astype(np.uint8) * 255
    mask = image_like(b.Aseg / "tumor.nii.gz", array, d / "mask255.nii.gz")
    return Step(["export", "nifti", "--mask", mask, "--out", d / "out.nii.gz", "--patient-id", "A"],
                may_change=[d / "out.nii.gz", d / "out.nii.gz.manifest.json"],
                verify=lambda: None if int(array_of(d / "out.nii.gz").sum()) == int((array > 0).sum()) else "volume changed")


case("ok-mask-255", "masks", "accept", "a 0/255 mask exported")(_mask_255)


def _mask_other_grid(b: Base, d: Path) -> Step:
    mask = sitk.ReadImage(str(b.Aseg / "tumor.nii.gz"))
    reference = sitk.ReadImage(str(b.A / "T2W.nii.gz"))
    finer = sitk.Resample(mask, [s * 2 for s in mask.GetSize()[:2]] + [mask.GetSize()[2]], sitk.Transform(),
                          sitk.sitkNearestNeighbor, mask.GetOrigin(),
                          [mask.GetSpacing()[0] / 2, mask.GetSpacing()[1] / 2, mask.GetSpacing()[2]],
                          mask.GetDirection(), 0, sitk.sitkUInt8)
    assert reference.GetSize() == mask.GetSize()
    (d / "seg").mkdir()
    sitk.WriteImage(finer, str(d / "seg" / "tumor.nii.gz"))
    return Step(predict_argv(b, d, mask=d / "seg" / "tumor.nii.gz"), may_change=[d / "readout"],
                verify=readout_value(d / "readout", b.lnm_A))


case("ok-mask-on-finer-grid", "masks", "warn", "A's mask on a grid twice as fine (resampled, with a warning)",
     "not on the T2WI grid")(_mask_other_grid)


def _unreviewed_ok(b: Base, d: Path) -> Step:
    return Step(predict_argv(b, d), may_change=[d / "readout"], verify=readout_value(d / "readout", b.lnm_A))


case("ok-predict-unreviewed", "masks", "warn", "the automatic (unreviewed) mask", "not been marked as reviewed")(
    _unreviewed_ok)


def _review_garbage(b: Base, d: Path) -> Step:
    seg = cp(b.Aseg, d / "seg")
    (seg / "tumor.nii.gz.review.json").write_text('{"reviewed": "yes", "origin": "manual"}')
    return Step(["export", "nifti", "--mask", seg / "tumor.nii.gz", "--out", d / "t.nii.gz", "--reviewed-only"])


case("review-record-wrong-types", "masks", "error", "a review record saying reviewed: \"yes\"",
     ("tumor.nii.gz.review.json", "is not boolean"))(_review_garbage)


def _review_edited_mask(b: Base, d: Path) -> Step:
    seg = cp(b.Aseg, d / "seg")
    mark_reviewed(seg / "tumor.nii.gz")
    array = array_of(seg / "tumor.nii.gz")
    z, y, x = np.argwhere(array == 0)[0]
    array[z, y, x] = 1
    image_like(seg / "tumor.nii.gz", array, seg / "tumor.nii.gz")  # the mask changed after its review
    return Step(["export", "nifti", "--mask", seg / "tumor.nii.gz", "--out", d / "t.nii.gz", "--reviewed-only"])


case("review-mask-edited-after-review", "masks", "error", "--reviewed-only on a mask edited after its review",
     ("tumor.nii.gz", "review"))(_review_edited_mask)


def _case_via_symlink(b: Base, d: Path) -> Step:
    (d / "link").symlink_to(b.Areg)
    return Step(["segment", d / "link", "--out", d / "seg"], may_change=[d / "seg"],
                verify=seg_volume_is(d / "seg", b.volume_A))


case("ok-case-via-symlink", "paths", "accept", "the case folder given through a symbolic link")(_case_via_symlink)


def _mask_65535(b: Base, d: Path) -> Step:
    array = (array_of(b.Aseg / "tumor.nii.gz") > 0).astype(np.uint16) * 65535
    mask = image_like(b.Aseg / "tumor.nii.gz", array, d / "m.nii.gz")
    return Step(["export", "nifti", "--mask", mask, "--out", d / "o.nii.gz", "--patient-id", "A"],
                may_change=[d / "o.nii.gz", d / "o.nii.gz.manifest.json"],
                verify=lambda: None if int(array_of(d / "o.nii.gz").sum()) == int((array > 0).sum()) else "volume changed")


case("ok-mask-label-65535", "masks", "accept", "a one-label mask whose label is 65535")(_mask_65535)


def _mask_is_dicom(b: Base, d: Path) -> Step:
    return Step(predict_argv(b, d, mask=sorted(b.dicom_t2.iterdir())[0]))


case("mask-is-a-dicom-file", "masks", "error", "--mask names a DICOM file", ("IM0001.dcm", "not an image file"))(
    _mask_is_dicom)


def _report_images_gone(b: Base, d: Path) -> Step:
    case = cp(b.A, d / "A")
    subprocess.run([PYTHON, "-m", "CervicalAILib.cli", "predict", case, "--mask", b.Aseg / "tumor.nii.gz", "--clinical",
                    b.Aclin, "--transforms", b.Areg, "--out", d / "readout"], capture_output=True, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO / "CervicalAI")})
    shutil.rmtree(case)
    return Step(["report", d / "readout", "--out", d / "r.html"], may_change=[d / "r.html"],
                verify=files_exist(d / "r.html"))


case("ok-report-images-gone", "readout and report", "warn", "the case's images deleted after the readout",
     "not found")(_report_images_gone)


# =============================================================================== cases: clinical values


def _clinical(change=None, text=None):
    def make(b: Base, d: Path) -> Step:
        return Step(predict_argv(b, d, clinical=clinical_file(b, d, change, text)), may_change=[d / "readout"])
    return make


for _id, _change, _mention, _what in [
    ("bool-as-number", lambda v: {**v, "ln_short_axis_mm": True}, ("ln_short_axis_mm", "not a number"), "ln_short_axis_mm: true"),
    ("age-200", lambda v: {**v, "age": 200}, ("age", "out of range"), "age 200"),
    ("age-negative", lambda v: {**v, "age": -4}, ("age",), "age -4"),
    ("scc-negative", lambda v: {**v, "scc_ag": -1}, ("scc_ag",), "SCC-Ag -1"),
    ("huge-number", lambda v: {**v, "scc_ag": 1e308}, ("scc_ag",), "SCC-Ag 1e308"),
    ("misspelt-key", lambda v: {**{k: x for k, x in v.items() if k != "ln_short_axis_mm"}, "ln_shortaxis_mm": 7.5},
     ("ln_shortaxis_mm", "ln_short_axis_mm"), "ln_shortaxis_mm instead of ln_short_axis_mm"),
    ("capitalised-key", lambda v: {**{k: x for k, x in v.items() if k != "age"}, "Age": 50}, ("Age", "age"), "Age"),
    ("figo-unknown", lambda v: {**v, "figo_stage": "IB9"}, ("figo_stage", "IB9"), "FIGO IB9"),
    ("figo-number", lambda v: {**v, "figo_stage": 2}, ("figo_stage",), "figo_stage: 2"),
    ("histology-list", lambda v: {**v, "histology": ["SCC"]}, ("histology",), "histology: [\"SCC\"]"),
    ("center-object", lambda v: {**v, "center": {"name": "A"}}, ("center",), "center: an object"),
    ("short-over-long", lambda v: {**v, "ln_short_axis_mm": 15, "ln_long_axis_mm": 8}, ("short axis",), "short axis > long"),
    ("necrosis-maybe", lambda v: {**v, "ln_necrosis": "maybe"}, ("ln_necrosis",), "ln_necrosis: maybe"),
    ("c-lnm-contradiction", lambda v: {**v, "c_lnm": 1, "ln_short_axis_mm": 4}, ("c_lnm",), "c_lnm 1 with a 4 mm node"),
    ("c-lnm-2", lambda v: {**v, "c_lnm": 2}, ("c_lnm",), "c_lnm 2"),
    ("age-string-word", lambda v: {**v, "age": "fifty"}, ("age",), "age: fifty"),
]:
    case(f"clinical-{_id}", "clinical values", "error", _what, _mention)(_clinical(_change))
for _id, _text, _mention, _what in [
    ("not-json", "{age: 50,}", ("clinical.json", "JSON"), "clinical.json not JSON"),
    ("empty", "", ("clinical.json",), "an empty clinical.json"),
    ("list", "[1, 2, 3]", ("clinical.json", "object"), "clinical.json holding a list"),
    ("binary", b"\xff\xfe\x00\x81garbage", ("clinical.json",), "binary garbage"),
    ("nan-literal", '{"age": NaN}', ("clinical.json", "NaN"), "age: NaN (a JSON extension)"),
    ("duplicate-key", '{"age": 200, "age": 50}', ("clinical.json", "twice"), "age given twice (the last would win)"),
]:
    case(f"clinical-{_id}", "clinical values", "error", _what, _mention)(_clinical(text=_text))


def _clinical_extra(b: Base, d: Path) -> Step:
    return Step(predict_argv(b, d, clinical=clinical_file(b, d, lambda v: {**v, "favourite_colour": "blue"})),
                may_change=[d / "readout"], verify=readout_value(d / "readout", b.lnm_A))


case("ok-clinical-extra-key", "clinical values", "warn", "an extra key no model uses", "favourite_colour")(_clinical_extra)


def _clinical_bom(b: Base, d: Path) -> Step:
    path = clinical_file(b, d, text="\ufeff" + b.Aclin.read_text())
    return Step(predict_argv(b, d, clinical=path), may_change=[d / "readout"], verify=readout_value(d / "readout", b.lnm_A))


case("ok-clinical-bom", "clinical values", "accept", "clinical.json with a UTF-8 byte-order mark")(_clinical_bom)


def _clinical_missing(b: Base, d: Path) -> Step:
    return Step(predict_argv(b, d, clinical=d / "nowhere.json"), may_change=[d / "readout"])


case("clinical-missing-file", "clinical values", "error", "--clinical names nothing", ("nowhere.json", "not found"))(
    _clinical_missing)


# =============================================================================== cases: readout and report


def _report(change: Callable[[dict], None], extra: list | None = None):
    def make(b: Base, d: Path) -> Step:
        folder = readout_copy(b, d, change)
        return Step(["report", folder, "--out", d / "report.html", *(extra or [])],
                    may_change=[d / "report.html", d / "report.pdf"])
    return make


for _id, _change, _mention, _what in [
    ("probability-750", lambda r: (r["lnm"].update(probability=7.5), r.update(lnm_probability=7.5)),
     ("lnm.probability", "maximum"), "LNM probability 750 %"),
    ("volume-negative", lambda r: r["segmentation"].update(volume_ml=-3), ("volume_ml",), "tumour volume -3 mL"),
    ("diameter-huge", lambda r: r["segmentation"].update(max_diameter_mm=5e5), ("max_diameter_mm",), "diameter 500 m"),
    ("cutoff-2", lambda r: r["lnm"].update(cutoff=2), ("cutoff",), "cut-off 2"),
    ("probability-string", lambda r: (r["lnm"].update(probability="high"), r.update(lnm_probability="high")),
     ("probability",), "probability 'high'"),
    ("probability-bool", lambda r: (r["lnm"].update(probability=True), r.update(lnm_probability=True)),
     ("probability",), "probability true"),
    ("contradiction", lambda r: r.update(lnm_probability=0.97), ("contradicts",), "two different LNM probabilities"),
    ("positive-flipped", lambda r: r["lnm"].update(positive=not r["lnm"]["positive"]), ("contradicts",),
     "'above the cut-off' flipped"),
    ("points-edited", lambda r: r["nomogram"].update(total_points=r["nomogram"]["total_points"] + 50),
     ("contradicts",), "nomogram total edited"),
    ("auc-edited", lambda r: r["lnm"]["validated"][-1].update(auc=0.99), ("validated",), "external AUC edited to 0.99"),
    ("age-300", lambda r: r["clinical"].update(age=300), ("clinical.age",), "age 300 in the readout"),
    ("schema-unknown", lambda r: r.update(schema="cervicalai.readout/9"), ("schema",), "readout schema /9"),
    ("missing-lnm", lambda r: r.pop("lnm"), ("lnm",), "the lnm block removed"),
    ("warnings-not-list", lambda r: r.update(warnings="none"), ("warnings",), "warnings as a string"),
    ("flagged-slice-negative", lambda r: r["segmentation"].update(flagged_slices=[{"slice": -4, "confidence": 0.2}]),
     ("slice",), "a negative slice number"),
]:
    case(f"report-{_id}", "readout and report", "error", _what, _mention)(_report(_change))


def _report_text(text: str | bytes, mention: tuple, what: str, id: str):
    def make(b: Base, d: Path) -> Step:
        folder = cp(b.Areadout, d / "readout")
        (folder / "readout.json").write_bytes(text if isinstance(text, bytes) else text.encode())
        return Step(["report", folder, "--out", d / "report.html"], may_change=[d / "report.html"])
    case(f"report-{id}", "readout and report", "error", what, mention)(make)


_report_text("", ("readout.json", "JSON"), "an empty readout.json", "empty")
_report_text('{"schema": "cervicalai.readout/1", "lnm": {', ("readout.json", "JSON"), "a truncated readout.json", "truncated")
_report_text("[]", ("readout",), "readout.json holding a list", "list")
_report_text(b"\x00\x01\x02garbage", ("readout.json",), "binary readout.json", "binary")


def _report_nan(b: Base, d: Path) -> Step:
    folder = cp(b.Areadout, d / "readout")
    text = (folder / "readout.json").read_text()
    document = json.loads(text)
    document["rad_score"] = "__NAN__"
    (folder / "readout.json").write_text(json.dumps(document).replace('"__NAN__"', "NaN"))
    return Step(["report", folder, "--out", d / "report.html"], may_change=[d / "report.html"])


case("report-nan", "readout and report", "error", "rad_score NaN (a JSON extension)", ("readout.json", "NaN"))(_report_nan)


def _report_ok_no_nomogram(b: Base, d: Path) -> Step:
    folder = cp(b.Areadout, d / "readout")
    (folder / "nomogram.png").unlink()
    return Step(["report", folder, "--out", d / "report.html"], may_change=[d / "report.html"],
                verify=files_exist(d / "report.html"))


case("ok-report-no-nomogram", "readout and report", "warn", "nomogram.png deleted (the report says so)", "nomogram")(
    _report_ok_no_nomogram)


def _report_inside(b: Base, d: Path) -> Step:
    folder = cp(b.Areadout, d / "readout")
    return Step(["report", folder, "--out", folder / "report.html", "--pdf"],
                may_change=[folder / "report.html", folder / "report.pdf"],
                verify=files_exist(folder / "report.html", folder / "report.pdf"))


case("ok-report-in-readout-folder", "readout and report", "accept", "the report written into the readout folder")(
    _report_inside)


def _report_over_readout(b: Base, d: Path) -> Step:
    folder = cp(b.Areadout, d / "readout")
    return Step(["report", folder, "--out", folder / "readout.json", "--overwrite"])


case("report-over-readout-json", "paths", "error", "--out readout.json --overwrite", ("readout.json",))(_report_over_readout)


def _report_pdf_is_html(b: Base, d: Path) -> Step:
    folder = cp(b.Areadout, d / "readout")
    return Step(["report", folder, "--out", d / "r.html", "--pdf", d / "r.html"])


case("report-pdf-same-as-html", "options", "error", "--pdf names the HTML file", ("PDF",))(_report_pdf_is_html)


def _report_over_input_image(b: Base, d: Path) -> Step:
    case = cp(b.A, d / "A")
    seg = cp(b.Aseg, d / "seg")
    folder = d / "readout"
    subprocess.run([PYTHON, "-m", "CervicalAILib.cli", "predict", case, "--mask", seg / "tumor.nii.gz", "--clinical",
                    b.Aclin, "--transforms", b.Areg, "--out", folder], capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(REPO / "CervicalAI")}, check=True)
    return Step(["report", folder, "--out", case / "T2W.html", "--pdf", seg / "tumor.nii.gz", "--overwrite"],
                may_change=[case / "T2W.html"])


case("report-pdf-over-mask", "paths", "error", "--pdf names the tumour mask the readout used", ("tumor.nii.gz",))(
    _report_over_input_image)


def _report_wrong_suffix(b: Base, d: Path) -> Step:
    return Step(["report", cp(b.Areadout, d / "readout"), "--out", d / "report.txt"])


case("report-txt", "options", "error", "--out report.txt", (".html",))(_report_wrong_suffix)


def _report_pseudonym_without_key(b: Base, d: Path) -> Step:
    return Step(["report", cp(b.Areadout, d / "readout"), "--out", d / "r.html", "--pseudonym"],
                env={"CERVICALAI_DEID_KEY": ""})


case("report-pseudonym-no-key", "de-identification", "error", "--pseudonym without a key", ("key",))(
    _report_pseudonym_without_key)


def _report_short_key(b: Base, d: Path) -> Step:
    return Step(["report", cp(b.Areadout, d / "readout"), "--out", d / "r.html", "--pseudonym", "--key", "short"])


case("report-short-key", "de-identification", "error", "--key of 5 characters", ("too short",))(_report_short_key)


def _report_key_without_pseudonym(b: Base, d: Path) -> Step:
    return Step(["report", cp(b.Areadout, d / "readout"), "--out", d / "r.html", "--key", KEY])


case("report-key-without-pseudonym", "options", "error", "--key without --pseudonym", ("--pseudonym",))(
    _report_key_without_pseudonym)


def _report_exists(b: Base, d: Path) -> Step:
    (d / "r.html").write_text("an earlier report")
    return Step(["report", cp(b.Areadout, d / "readout"), "--out", d / "r.html"])


case("report-exists", "paths", "error", "the report file exists, no --overwrite", ("--overwrite",))(_report_exists)


def _report_pseudonym_phi(b: Base, d: Path) -> Step:
    case = cp(b.A, d / "PENHALLOW_OSWIN_MRN4412")
    seg = cp(b.Aseg, d / "seg")
    mark_reviewed(seg / "tumor.nii.gz", "Dr Mirela Quennford")
    reviewed_at = json.loads((seg / "tumor.nii.gz.review.json").read_text())["reviewed_at"]
    subprocess.run([PYTHON, "-m", "CervicalAILib.cli", "predict", case, "--mask", seg / "tumor.nii.gz", "--clinical",
                    b.Aclin, "--out", d / "readout"], capture_output=True, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO / "CervicalAI")})
    created = json.loads((d / "readout" / "readout.json").read_text())["created"]
    out = d / "report"
    out.mkdir()
    return Step(["report", d / "readout", "--out", out / "report.html", "--pdf", "--pseudonym", "--key", KEY],
                may_change=[out], phi_in=[out],
                phi=["PENHALLOW", "OSWIN", "MRN4412", "Quennford", "Mirela", reviewed_at[:19], reviewed_at[:10],
                     created[:10], str(d)])


case("report-pseudonym-phi", "de-identification", "accept",
     "report --pseudonym on a case named after the patient, reviewed by a named reader")(_report_pseudonym_phi)


# =============================================================================== cases: output paths


def _reviewed_overwrite(b: Base, d: Path) -> Step:
    seg = cp(b.Aseg, d / "seg")
    mark_reviewed(seg / "tumor.nii.gz")
    return Step(["segment", b.Areg, "--out", seg, "--overwrite"])


case("segment-overwrite-reviewed", "data loss", "error", "segment --overwrite onto a reviewed segmentation",
     ("reviewed contour",))(_reviewed_overwrite)


def _reviewed_overwrite_nested(b: Base, d: Path) -> Step:
    out = d / "out"
    cp(b.Aseg, out / "earlier")
    mark_reviewed(out / "earlier" / "tumor.nii.gz")
    return Step(["segment", b.Areg, "--out", out, "--overwrite"])


case("segment-overwrite-nested-reviewed", "data loss", "error", "--out holds a reviewed contour one level down",
     ("reviewed contour",))(_reviewed_overwrite_nested)


def _predict_overwrite_reviewed(b: Base, d: Path) -> Step:
    seg = cp(b.Aseg, d / "seg")
    mark_reviewed(seg / "tumor.nii.gz")
    argv = predict_argv(b, d, mask=seg / "tumor.nii.gz")
    argv[argv.index("--out") + 1] = d / "elsewhere"
    cp(seg, d / "elsewhere")
    return Step(argv + ["--overwrite"])


case("predict-overwrite-reviewed", "data loss", "error", "predict --overwrite onto a folder with a reviewed contour",
     ("reviewed contour",))(_predict_overwrite_reviewed)


def _export_over_reviewed_mask(b: Base, d: Path) -> Step:
    seg = cp(b.Aseg, d / "seg")
    other = cp(b.Aseg, d / "other")
    mark_reviewed(other / "tumor.nii.gz")
    return Step(["export", "nifti", "--mask", seg / "tumor.nii.gz", "--out", other / "tumor.nii.gz", "--overwrite"])


case("export-over-reviewed-mask", "data loss", "error", "export nifti --overwrite onto another reviewed mask",
     ("reviewed",))(_export_over_reviewed_mask)


def _export_over_own_mask(b: Base, d: Path) -> Step:
    seg = cp(b.Aseg, d / "seg")
    return Step(["export", "nifti", "--mask", seg / "tumor.nii.gz", "--out", seg / "tumor.nii.gz", "--overwrite"])


case("export-over-its-input", "data loss", "error", "export nifti --out = --mask", ("input",))(_export_over_own_mask)


def _segment_foreign_file(b: Base, d: Path) -> Step:
    seg = cp(b.Aseg, d / "seg")
    (seg / "notes.txt").write_text("the reader's notes")
    return Step(["segment", b.Areg, "--out", seg, "--overwrite"])


case("segment-overwrite-foreign-file", "data loss", "error", "--overwrite onto a folder that also holds the reader's notes",
     ("notes.txt",))(_segment_foreign_file)


def _segment_own_overwrite(b: Base, d: Path) -> Step:
    seg = cp(b.Bseg, d / "seg")
    return Step(["segment", b.Areg, "--out", seg, "--overwrite"], may_change=[seg],
                verify=seg_volume_is(seg, b.volume_A))


case("ok-segment-overwrite-own", "paths", "accept", "--overwrite onto its own earlier output")(_segment_own_overwrite)


def _out_is_input(command: str):
    def make(b: Base, d: Path) -> Step:
        case = cp(b.A, d / "A")
        seg = cp(b.Aseg, d / "seg")
        cohort = d / "cohort"
        if command.startswith("extract"):
            cp(b.A, cohort / "A")
            (cohort / "cohort.csv").write_text("case_id,center,lnm\nA,A,1\n")
        argv = {
            "register-same": ["study", "register", case, "--out", case, "--overwrite"],
            "register-inside": ["study", "register", case, "--out", case / "reg", "--overwrite"],
            "register-parent": ["study", "register", case, "--out", d, "--overwrite"],
            "segment-same": ["segment", case, "--out", case, "--overwrite"],
            "segment-inside": ["segment", case, "--out", case / "labels", "--overwrite"],
            "predict-into-seg": predict_argv(b, d, case=case, mask=seg / "tumor.nii.gz")[:-1] + [seg, "--overwrite"],
            "predict-into-case": predict_argv(b, d, case=case)[:-1] + [case / "readout", "--overwrite"],
            "extract-cohort-csv": ["extract", cohort, "--out", cohort / "cohort.csv", "--overwrite", "--no-deep"],
            "extract-inside": ["extract", cohort, "--out", cohort / "A" / "f.csv", "--no-deep"],
            "export-nnunet-inside": ["export", "nnunet", case, "--out", case, "--dataset-id", 5, "--name", "X"],
            "fit-over-table": ["fit", b.tables / "reader1.csv", "--endpoint", "lnm", "--out", b.tables, "--overwrite"],
            "evaluate-over-table": ["evaluate", b.tables / "scores.csv", "--label", "lnm", "--score", "score", "--out",
                                    b.tables, "--overwrite"],
            "icc-parent": ["icc", b.tables / "reader1.csv", b.tables / "reader2.csv", "--out", b.tables.parent,
                           "--overwrite"],
            "synth-figure-over-case": ["synth", "--figure", case, "--out", case / "T2W.nii.gz", "--overwrite"],
            "train-seg-into-cases": ["train-seg", case, "--out", case / "bundle", "--epochs", 1],
        }[command]
        return Step(argv)
    return make


for _command in ("register-same", "register-inside", "register-parent", "segment-same", "segment-inside",
                 "predict-into-seg", "predict-into-case", "extract-cohort-csv", "extract-inside",
                 "export-nnunet-inside", "fit-over-table", "evaluate-over-table", "icc-parent",
                 "synth-figure-over-case", "train-seg-into-cases"):
    case(f"out-{_command}", "paths", "error", f"{_command.replace('-', ' ')}: --out is, is inside or contains an input",
         ("input",))(_out_is_input(_command))


def _symlinked_out(b: Base, d: Path) -> Step:
    case = cp(b.Areg, d / "A")
    (d / "link").symlink_to(case)
    return Step(["segment", case, "--out", d / "link", "--overwrite"])


case("out-symlink-to-input", "paths", "error", "--out is a symbolic link to the input case", ("input",))(_symlinked_out)


def _out_below_file(b: Base, d: Path) -> Step:
    (d / "file.txt").write_text("x")
    return Step(["segment", b.Areg, "--out", d / "file.txt" / "seg"])


case("out-below-a-file", "paths", "error", "--out below a regular file", ("file.txt", "not a folder"))(_out_below_file)


def _out_is_file(b: Base, d: Path) -> Step:
    (d / "seg").write_text("x")
    return Step(["segment", b.Areg, "--out", d / "seg", "--overwrite"])


case("out-is-a-file", "paths", "error", "--out names a regular file", ("not a folder",))(_out_is_file)


def _out_empty(b: Base, d: Path) -> Step:
    return Step(["segment", b.Areg, "--out", ""])


case("out-empty-string", "paths", "error", "--out ''", ("--out",))(_out_empty)


def _out_exists(b: Base, d: Path) -> Step:
    cp(b.Bseg, d / "seg")
    return Step(["segment", b.Areg, "--out", d / "seg"])


case("out-exists-no-overwrite", "paths", "error", "--out exists, no --overwrite", ("--overwrite",))(_out_exists)


def _read_only(command: str):
    def make(b: Base, d: Path) -> Step:
        locked = d / "locked"
        locked.mkdir()
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i", str(locked)], check=True, capture_output=True)
            cleanup = lambda: subprocess.run(["chattr", "-i", str(locked)], check=True)  # noqa: E731
        else:
            os.chmod(locked, 0o555)
            cleanup = lambda: os.chmod(locked, 0o755)  # noqa: E731
        argv = {"segment": ["segment", b.Areg, "--out", locked / "seg"],
                "report": ["report", b.Areadout, "--out", locked / "r.html"],
                "export": ["export", "nifti", "--mask", b.Aseg / "tumor.nii.gz", "--out", locked / "t.nii.gz"]}[command]
        return Step(argv, cleanup=cleanup)
    return make


for _command in ("segment", "report", "export"):
    case(f"read-only-{_command}", "paths", "error", f"{_command} into a read-only folder", ("locked",))(_read_only(_command))


def _full_disk(command: str):
    def make(b: Base, d: Path) -> Step:
        import resource

        size = 2 * 1024 if command == "segment" else 48 * 1024  # below the largest file the command writes

        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

        argv = {"register": ["study", "register", b.A, "--out", d / "case"],
                "segment": ["segment", b.Areg, "--out", d / "seg"],
                "predict": predict_argv(b, d)}[command]
        return Step(argv, preexec=limit)
    return make


for _command in ("register", "segment", "predict"):
    case(f"disk-full-{_command}", "paths", "error", f"{_command} on a full disk (a file size limit below its largest file)",
         ("incomplete",) if _command == "register" else ())(_full_disk(_command))


def _kill(command: str, fraction: float):
    def make(b: Base, d: Path) -> Step:
        old = cp(b.Bseg if command == "segment" else b.Breg, d / "out")
        argv = {"segment": ["segment", b.Areg, "--out", old, "--overwrite"],
                "register": ["study", "register", b.A, "--out", old, "--overwrite"]}[command]
        before = snapshot(old)

        def verify():
            if not old.exists():
                return None
            now = snapshot(old)
            if now == before:
                return None
            if sorted(now) != sorted(before):
                return f"a partial output after kill -9: {sorted(now)}"
            from CervicalAILib.io.images import read_image

            for name in now:
                if name.endswith(".nii.gz"):
                    read_image(old / name)
            return None
        return Step(argv, may_change=[old], verify=verify, kill_after=fraction * b.timings[command])
    return make


for _command in ("segment", "register"):
    for _fraction in (0.3, 0.6, 0.85, 0.95):
        case(f"kill-9-{_command}-{int(_fraction * 100)}pct", "data loss", "accept",
             f"{_command} --overwrite over an earlier output, killed with SIGKILL at {_fraction:.0%} of its run time: "
             "the old output or none, never a partial one")(_kill(_command, _fraction))


# =============================================================================== cases: bundles


def _bundle(edit: Callable[[Path], None] | None, command: str = "segment", source: str = "cervix-tumor-seg-mpmri"):
    def make(b: Base, d: Path) -> Step:
        bundle = cp(b.models / source, d / "bundle")
        if edit:
            edit(bundle)
        if command == "segment":
            return Step(["segment", b.Areg, "--out", d / "seg", "--model", bundle], may_change=[d / "seg"])
        argv = predict_argv(b, d, extra=["--bundle", bundle])
        return Step(argv, may_change=[d / "readout"])
    return make


def _edit_json(changes: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        manifest = json.loads((bundle / "bundle.json").read_text())
        changes(manifest)
        (bundle / "bundle.json").write_text(json.dumps(manifest, indent=2))
    return edit


def _threshold_edit(b: Base, d: Path) -> Step:
    step = _bundle(_edit_json(lambda m: m["postprocessing"].update(threshold=0.97)))(b, d)

    def verify():
        model = json.loads((d / "seg" / "segmentation.json").read_text())["model"]
        return None if model.get("source") == "user-supplied" else "the edited bundle is not marked user-supplied"
    step.verify = verify
    return step


case("bundle-threshold-edited-copy", "bundles", "warn", "a copy of the shipped model with its threshold edited",
     "user-supplied")(_threshold_edit)


def _auc_edit(b: Base, d: Path) -> Step:
    def change(m):
        m["metrics"]["auc"]["external_validation"]["dlrc_probability"] = 0.99
    step = _bundle(_edit_json(change), "predict", "dlrc-lnm")(b, d)

    def verify():
        readout = json.loads((d / "readout" / "readout.json").read_text())
        if readout["models"]["lnm"].get("source") != "user-supplied":
            return "the edited risk model is not marked user-supplied"
        report = subprocess.run([PYTHON, "-m", "CervicalAILib.cli", "report", d / "readout", "--out", d / "r.html"],
                                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "CervicalAI")})
        if report.returncode != 0 or "user-supplied" not in (d / "r.html").read_text():
            return "the report does not say the model is user-supplied"
        return None
    step.verify = verify
    step.may_change.append(d / "r.html")
    return step


case("bundle-auc-edited-copy", "bundles", "warn", "a copy of the LNM model quoting an external AUC of 0.99",
     "user-supplied")(_auc_edit)


for _id, _edit, _mention, _what in [
    ("no-bundle-json", lambda p: (p / "bundle.json").unlink(), ("bundle.json",), "a bundle folder without bundle.json"),
    ("bundle-json-garbage", lambda p: (p / "bundle.json").write_text("{{{"), ("bundle.json", "JSON"), "bundle.json not JSON"),
    ("onnx-swapped", lambda p: (p / "model.onnx").write_bytes(b"not a network"), ("SHA-256",), "model.onnx replaced"),
    ("onnx-missing", lambda p: (p / "model.onnx").unlink(), ("model.onnx", "missing"), "model.onnx deleted"),
    ("pickle-listed", _edit_json(lambda m: m["files"].update({"weights.pkl": {"sha256": "0" * 64}})), ("weights.pkl",),
     "bundle.json lists a pickle"),
    ("path-traversal", _edit_json(lambda m: m["files"].update({"../../etc/passwd.json": {"sha256": "0" * 64}})),
     ("relative path",), "bundle.json lists ../../etc/passwd.json"),
    ("version-number", _edit_json(lambda m: m.update(version=2)), ("version",), "version as a number"),
    ("schema-unknown", _edit_json(lambda m: m.update(schema="cervicalai.bundle/99")), ("schema",), "bundle schema /99"),
    ("task-wrong", _edit_json(lambda m: m.update(task="risk-model")), ("task",), "a segmentation network labelled risk-model"),
    ("hash-short", _edit_json(lambda m: m["files"]["model.onnx"].update(sha256="abc")), ("sha256",), "a 3-digit hash"),
]:
    case(f"bundle-{_id}", "bundles", "error", _what, _mention)(_bundle(_edit))


def _bundle_is_file(b: Base, d: Path) -> Step:
    (d / "bundle").write_text("x")
    return Step(["segment", b.Areg, "--out", d / "seg", "--model", d / "bundle"])


case("bundle-is-a-file", "bundles", "error", "--model names a file", ("bundle",))(_bundle_is_file)


def _bundle_missing(b: Base, d: Path) -> Step:
    return Step(predict_argv(b, d, extra=["--bundle", d / "nowhere"]))


case("bundle-missing", "bundles", "error", "--bundle names nothing", ("nowhere",))(_bundle_missing)


def _bundle_wrong_task_for_predict(b: Base, d: Path) -> Step:
    return Step(predict_argv(b, d, extra=["--bundle", b.models / "cervix-tumor-seg-mpmri"]))


case("bundle-segmentation-as-risk", "bundles", "error", "a segmentation bundle given to predict --bundle", ("task",))(
    _bundle_wrong_task_for_predict)


# =============================================================================== cases: options


def _options(argv_of: Callable[[Base, Path], list]):
    def make(b: Base, d: Path) -> Step:
        return Step(argv_of(b, d))
    return make


for _id, _argv, _mention, _what in [
    ("evaluate-hl-groups-0", lambda b, d: ["evaluate", b.tables / "scores.csv", "--label", "lnm", "--score", "score",
                                           "--hl-groups", 0, "--out", d / "e"], ("--hl-groups",), "--hl-groups 0"),
    ("evaluate-hl-groups-text", lambda b, d: ["evaluate", b.tables / "scores.csv", "--label", "lnm", "--score", "score",
                                              "--hl-groups", "ten", "--out", d / "e"], ("--hl-groups",), "--hl-groups ten"),
    ("evaluate-unknown-column", lambda b, d: ["evaluate", b.tables / "scores.csv", "--label", "lnm", "--score", "nope",
                                              "--out", d / "e"], ("nope",), "--score names no column"),
    ("evaluate-label-text", lambda b, d: ["evaluate", b.tables / "scores.csv", "--label", "label_text", "--score",
                                          "score", "--out", d / "e"], ("label_text",), "a text label without --positive"),
    ("evaluate-thresholds-bad", lambda b, d: ["evaluate", b.tables / "scores.csv", "--label", "lnm", "--score", "score",
                                              "--thresholds", "a:b:c", "--out", d / "e"], ("a:b:c",),
     "--thresholds a:b:c"),
    ("extract-jobs-0", lambda b, d: ["extract", d, "--out", d / "f.csv", "--jobs", 0], ("--jobs",), "--jobs 0"),
    ("extract-jobs-negative", lambda b, d: ["extract", d, "--out", d / "f.csv", "--jobs", -3], ("--jobs",), "--jobs -3"),
    ("icc-two-cases", lambda b, d: ["icc", _few_cases(b, d, 2, "a"), _few_cases(b, d, 2, "b"), "--out", d / "icc"],
     ("2 case",), "ICC from 2 cases"),
    ("icc-threshold-2", lambda b, d: ["icc", b.tables / "reader1.csv", b.tables / "reader2.csv", "--threshold", 2,
                                      "--out", d / "icc"], ("--threshold",), "--threshold 2"),
    ("fit-train-fraction", lambda b, d: ["fit", b.tables / "reader1.csv", "--endpoint", "lnm", "--train-fraction", 1.5,
                                         "--out", d / "bundle"], ("--train-fraction",), "--train-fraction 1.5"),
    ("fit-lasso-folds-1", lambda b, d: ["fit", b.tables / "reader1.csv", "--endpoint", "lnm", "--lasso-folds", 1,
                                        "--out", d / "bundle"], ("--lasso-folds",), "--lasso-folds 1"),
    ("synth-cases-0", lambda b, d: ["synth", "--cases", 0, "--out", d / "c"], ("cases",), "--cases 0"),
    ("synth-cases-negative", lambda b, d: ["synth", "--cases", -5, "--out", d / "c"], ("cases",), "--cases -5"),
    ("segment-device-tpu", lambda b, d: ["segment", b.Areg, "--out", d / "s", "--device", "tpu"], ("--device",),
     "--device tpu"),
    ("nnunet-id-0", lambda b, d: ["export", "nnunet", b.A, "--out", d / "raw", "--dataset-id", 0, "--name", "X"],
     ("1 to 999",), "--dataset-id 0"),
    ("nnunet-name-space", lambda b, d: ["export", "nnunet", b.A, "--out", d / "raw", "--dataset-id", 5, "--name",
                                        "bad name"], ("name",), "--name 'bad name'"),
    ("nnunet-channels-unknown", lambda b, d: ["export", "nnunet", b.A, "--out", d / "raw", "--dataset-id", 5, "--name",
                                              "X", "--channels", "T2W,PET"], ("channels",), "--channels T2W,PET"),
    ("nnunet-structure-absent", lambda b, d: ["export", "nnunet", b.A, "--out", d / "raw", "--dataset-id", 5,
                                              "--name", "X", "--structures", "cervix,liver"], ("liver",),
     "--structures names an organ the case's label table lacks"),
    ("nnunet-structure-is-tumour", lambda b, d: ["export", "nnunet", b.A, "--out", d / "raw", "--dataset-id", 5,
                                                 "--name", "X", "--structures", "Tumour,bladder"], ("Tumour",),
     "--structures Tumour,bladder (the tumour is label 1 already)"),
    ("export-dates-bogus", lambda b, d: ["export", "nifti", "--mask", b.Aseg / "tumor.nii.gz", "--out", d / "t.nii.gz",
                                         "--deidentify", "--key", KEY, "--dates", "blur"], ("--dates",), "--dates blur"),
    ("export-key-without-deid", lambda b, d: ["export", "nifti", "--mask", b.Aseg / "tumor.nii.gz", "--out",
                                              d / "t.nii.gz", "--key", KEY], ("--deidentify",), "--key without --deidentify"),
    ("export-key-file-missing", lambda b, d: ["export", "nifti", "--mask", b.Aseg / "tumor.nii.gz", "--out",
                                              d / "t.nii.gz", "--deidentify", "--key-file", d / "nokey"],
     ("nokey", "not found"), "--key-file names nothing"),
    ("export-nifti-wrong-suffix", lambda b, d: ["export", "nifti", "--mask", b.Aseg / "tumor.nii.gz", "--out",
                                                d / "t.png"], ("nii",), "export nifti --out t.png"),
    ("segment-missing-out", lambda b, d: ["segment", b.Areg], ("--out",), "no --out"),
    ("unknown-command", lambda b, d: ["segmnet", b.Areg], ("segmnet",), "a misspelt command"),
    ("segment-no-such-case", lambda b, d: ["segment", d / "nowhere", "--out", d / "s"], ("nowhere", "not found"),
     "a case folder that does not exist"),
    ("segment-cohort", lambda b, d: ["segment", b.root / "cohort", "--out", d / "s"], ("case folder",),
     "a cohort given to segment"),
    ("segment-file-not-case", lambda b, d: ["segment", b.Areg / "T2W.nii.gz", "--out", d / "s"], ("T2W",),
     "a single image file given to segment"),
]:
    case(f"option-{_id}", "options", "error", _what, _mention)(_options(_argv))


def _few_cases(b: Base, d: Path, n: int, name: str) -> Path:
    lines = (b.tables / "reader1.csv").read_text().splitlines()[: n + 1]
    path = d / f"{name}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _icc_ten(b: Base, d: Path) -> Step:
    a, c = _few_cases(b, d, 10, "a"), d / "c.csv"
    c.write_text("\n".join((b.tables / "reader2.csv").read_text().splitlines()[:11]) + "\n")
    return Step(["icc", a, c, "--out", d / "icc"], may_change=[d / "icc"], verify=files_exist(d / "icc" / "icc.csv"))


case("icc-ten-cases", "options", "warn", "ICC from 10 cases (allowed, with a warning)", "only 10 cases")(_icc_ten)


def _evaluate_ok(b: Base, d: Path) -> Step:
    def verify():
        metrics = json.loads((d / "e" / "metrics.json").read_text())
        return None if metrics["scores"]["score"].get("hosmer_lemeshow") else "Hosmer-Lemeshow missing"
    return Step(["evaluate", b.tables / "scores.csv", "--label", "lnm", "--score", "score", "--hl-groups", 5,
                 "--no-figures", "--out", d / "e"], may_change=[d / "e"], verify=verify)


case("ok-evaluate", "options", "accept", "evaluate with --hl-groups 5")(_evaluate_ok)


# =============================================================================== cases: de-identification


PHI_DICOM = {"PatientName": "Quillfeather^Zebedee", "PatientID": "MRN-77120934", "PositionReferenceIndicator": "ZEBEDEE-IC",
             "SequenceName": "QUILL77120934", "BodyPartExamined": "QUILLFEATHER", "InstitutionName": "St Elsewhereton",
             "SeriesDescription": "t2 tra Zebedee", "StudyDescription": "Pelvis for Quillfeather", "StudyDate": "20240315",
             "AccessionNumber": "ACC881234", "ReferringPhysicianName": "Housemartin^Gregory",
             "OperatorsName": "Techwright^Tomas", "StationName": "STELSE-MR01", "DeviceSerialNumber": "SN8876123",
             "ProtocolName": "Zebedee pelvis", "ImageComments": "called Zebedee", "PatientBirthDate": "19711203",
             "ContentDate": "20240315", "SeriesDate": "20240315", "AcquisitionDate": "20240315",
             "Manufacturer": "Quillfeather Medical", "StudyID": "STUDY4455", "ContrastBolusAgent": "Zebedee contrast",
             "PatientAge": "052Y"}
PHI_TOKENS = ["Quillfeather", "Zebedee", "77120934", "Elsewhereton", "20240315", "ACC881234", "Housemartin",
              "Techwright", "STELSE", "SN8876123", "19711203", "STUDY4455", "PRIVATE-NOTE", "NESTED-PHI"]


def _phi_dicom(ds, index):
    from pydicom.dataset import Dataset

    for keyword, value in PHI_DICOM.items():
        setattr(ds, keyword, value)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "QUILL77120934"]
    ds.private_block(0x0033, "ACME NOTES", create=True).add_new(0x01, "LO", "PRIVATE-NOTE Zebedee")
    request = Dataset()
    request.RequestedProcedureDescription = "NESTED-PHI Quillfeather"
    ds.RequestAttributesSequence = [request]
    ds.add_new(0x60004000, "LT", "Overlay of Zebedee")
    return ds


def _deid_seg(dates: str = "shift", images: bool = True):
    def make(b: Base, d: Path) -> Step:
        study = dicom_copy(b, d, _phi_dicom)
        seg = cp(b.Dseg, d / "seg")
        mark_reviewed(seg / "tumor.nii.gz", "Dr Zebedee Quillfeather")
        out = d / "partner"
        argv = ["export", "dicom-seg", "--mask", seg / "tumor.nii.gz", "--reference-dicom", study, "--out",
                out / "seg.dcm", "--deidentify", "--key", KEY, "--dates", dates]
        if images:
            argv += ["--images-out", out / "T2"]

        def verify():
            import pydicom

            problems = []
            for path in [out / "seg.dcm", *((out / "T2").iterdir() if images else [])]:
                ds = pydicom.dcmread(path)
                if any(element.tag.is_private for element in ds.iterall()):
                    problems.append(f"private tag in {path.name}")
            if shutil.which("dciodvfy"):
                for path in [out / "seg.dcm"] + ([sorted((out / "T2").iterdir())[0]] if images else []):
                    report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
                    errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
                    if errors:
                        problems.append(f"{path.name} fails dciodvfy: {errors[0]}")
            return "; ".join(problems) or None
        return Step(argv, may_change=[out], verify=verify, phi=PHI_TOKENS + ["Dr Zebedee"], phi_in=[out])
    return make


case("deid-dicom-seg-images", "de-identification", "accept",
     "dicom-seg --deidentify --images-out with PHI in PositionReferenceIndicator, SequenceName, BodyPartExamined, "
     "ImageType, Manufacturer, a private tag, a nested sequence and an overlay")(_deid_seg())
case("deid-dicom-seg-dates-removed", "de-identification", "accept", "the same with --dates remove")(_deid_seg("remove"))
case("deid-dicom-seg-only", "de-identification", "accept", "dicom-seg --deidentify without the images")(
    _deid_seg(images=False))


def _deid_burned_in(b: Base, d: Path) -> Step:
    study = dicom_copy(b, d, _set("BurnedInAnnotation", "YES"))
    return Step(["export", "dicom-seg", "--mask", b.Dseg / "tumor.nii.gz", "--reference-dicom", study, "--out",
                 d / "out" / "seg.dcm", "--images-out", d / "out" / "T2", "--deidentify", "--key", KEY])


case("deid-burned-in-annotation", "de-identification", "error", "images that say they have text burned in",
     ("BurnedInAnnotation",))(_deid_burned_in)


def _deid_latin1(b: Base, d: Path) -> Step:
    def change(ds, index):
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName = "Müller^Jürgen"
        ds.InstitutionName = "Klinikum Süd Jürgenstraße"
        return ds
    study = dicom_copy(b, d, change)
    out = d / "partner"
    return Step(["export", "dicom-seg", "--mask", b.Dseg / "tumor.nii.gz", "--reference-dicom", study, "--out",
                 out / "seg.dcm", "--images-out", out / "T2", "--deidentify", "--key", KEY], may_change=[out],
                phi=["Müller", "Jürgen", "Klinikum"], phi_in=[out])


case("deid-latin1-names", "de-identification", "accept", "Latin-1 names (ISO_IR 100) in the source")(_deid_latin1)


def _deid_nnunet(b: Base, d: Path) -> Step:
    from CervicalAILib.io.case import write_case

    good = cp(b.A, d / "site" / "DOE_JOHN_MRN5550123")
    (good / "clinical.json").write_text(json.dumps({"patient_id": "MRN5550123", "name": "John Doe"}))
    write_case(d / "site" / "ROE_JANE_MRN5550456", {"T2W": sitk.ReadImage(str(good / "T2W.nii.gz"))})
    mark_reviewed(good / "labels" / "tumor.nii.gz", "Dr Avery Penwright")
    out = d / "raw"
    return Step(["export", "nnunet", good, d / "site" / "ROE_JANE_MRN5550456", "--out", out, "--dataset-id", 77,
                 "--name", "Partner", "--registration", "none", "--deidentify", "--key", KEY], may_change=[out],
                phi=["DOE_JOHN", "ROE_JANE", "MRN5550123", "MRN5550456", "John Doe", "Penwright", str(d)],
                phi_in=[out], verify=files_exist(out / "Dataset077_Partner" / "dataset.json"))


case("deid-nnunet-folder-names", "de-identification", "accept",
     "nnunet --deidentify: case folders named after patients, one excluded, a named reviewer")(_deid_nnunet)


def _deid_two_seg_folders(b: Base, d: Path) -> Step:
    from CervicalAILib.core.errors import InputError  # noqa: F401

    a = cp(b.Aseg, d / "A" / "seg")
    c = cp(b.Bseg, d / "B" / "seg")
    env = {"PYTHONPATH": str(REPO / "CervicalAI"), **os.environ}
    subprocess.run([PYTHON, "-m", "CervicalAILib.cli", "export", "seg-nrrd", "--mask", a / "tumor.nii.gz", "--out",
                    d / "a.seg.nrrd", "--deidentify", "--key", KEY], capture_output=True, env=env, check=True)

    def verify():
        first = json.loads((d / "a.seg.nrrd.manifest.json").read_text())["cases"][0]["case"]
        second = json.loads((d / "b.seg.nrrd.manifest.json").read_text())["cases"][0]["case"]
        return None if first != second else f"two patients share the pseudonym {first}"
    return Step(["export", "seg-nrrd", "--mask", c / "tumor.nii.gz", "--out", d / "b.seg.nrrd", "--deidentify",
                 "--key", KEY], may_change=[d / "b.seg.nrrd", d / "b.seg.nrrd.manifest.json"], verify=verify)


case("deid-seg-nrrd-two-patients", "de-identification", "accept",
     "seg-nrrd --deidentify of two patients' masks, both in folders named seg")(_deid_two_seg_folders)


def _deid_unknown_patient(b: Base, d: Path) -> Step:
    (d / "seg").mkdir()
    cp(b.Aseg / "tumor.nii.gz", d / "seg" / "tumor.nii.gz")
    return Step(["export", "seg-nrrd", "--mask", d / "seg" / "tumor.nii.gz", "--out", d / "t.seg.nrrd", "--deidentify",
                 "--key", KEY])


case("deid-patient-unknown", "de-identification", "error", "a bare mask nobody can place, de-identified",
     ("which patient",))(_deid_unknown_patient)


def _deid_nifti_patient_id(b: Base, d: Path) -> Step:
    seg = cp(b.Aseg, d / "seg")
    mark_reviewed(seg / "tumor.nii.gz", "Dr Lorcan Featherstonehaugh")
    return Step(["export", "nifti", "--mask", seg / "tumor.nii.gz", "--out", d / "out" / "t.nii.gz", "--patient-id",
                 "MRN-66012345", "--deidentify", "--key", KEY], may_change=[d / "out"], phi_in=[d / "out"],
                phi=["MRN-66012345", "66012345", "Featherstonehaugh", "Lorcan", str(d)])


case("deid-nifti-patient-id", "de-identification", "accept", "nifti --deidentify --patient-id with a named reviewer")(
    _deid_nifti_patient_id)


def _deid_no_key(b: Base, d: Path) -> Step:
    return Step(["export", "dicom-seg", "--mask", b.Dseg / "tumor.nii.gz", "--reference-dicom", b.dicom_t2, "--out",
                 d / "seg.dcm", "--deidentify"], env={"CERVICALAI_DEID_KEY": ""})


case("deid-no-key", "de-identification", "error", "--deidentify without a key", ("key",))(_deid_no_key)


def _deid_short_key_file(b: Base, d: Path) -> Step:
    (d / "site.key").write_text("abc\n")
    return Step(["export", "dicom-seg", "--mask", b.Dseg / "tumor.nii.gz", "--reference-dicom", b.dicom_t2, "--out",
                 d / "seg.dcm", "--deidentify", "--key-file", d / "site.key"])


case("deid-short-key-file", "de-identification", "error", "a key file holding 3 characters", ("too short",))(
    _deid_short_key_file)


def _export_seg_images_over_reference(b: Base, d: Path) -> Step:
    study = dicom_copy(b, d)
    return Step(["export", "dicom-seg", "--mask", b.Dseg / "tumor.nii.gz", "--reference-dicom", study, "--out",
                 d / "seg.dcm", "--images-out", study, "--overwrite"])


case("export-images-out-over-reference", "paths", "error", "--images-out = the reference DICOM folder", ("input",))(
    _export_seg_images_over_reference)


def _export_seg_ok(b: Base, d: Path) -> Step:
    def verify():
        from CervicalAILib.export.dicom_seg import read_dicom_seg
        from CervicalAILib.export.reference import load_reference_series

        back = read_dicom_seg(d / "seg.dcm", load_reference_series(b.dicom_t2).image)
        expected = array_of(b.Dseg / "tumor.nii.gz")
        return None if np.array_equal(sitk.GetArrayFromImage(back) > 0, expected > 0) else "SEG voxels differ"
    return Step(["export", "dicom-seg", "--mask", b.Dseg / "tumor.nii.gz", "--reference-dicom", b.dicom_t2, "--out",
                 d / "seg.dcm"], may_change=[d / "seg.dcm", d / "seg.dcm.manifest.json"], verify=verify)


case("ok-export-dicom-seg", "masks", "accept", "a DICOM SEG of the automatic mask, read back voxel for voxel")(
    _export_seg_ok)


def _export_seg_other_patient(b: Base, d: Path) -> Step:
    mask = image_like(b.Dseg / "tumor.nii.gz", array_of(b.Dseg / "tumor.nii.gz"), d / "seg" / "tumor.nii.gz")
    record = json.loads((b.Aseg / "segmentation.json").read_text())
    (d / "seg" / "segmentation.json").write_text(json.dumps(record))  # the record says: made on patient A
    return Step(["export", "dicom-seg", "--mask", mask, "--reference-dicom", b.dicom_t2, "--out", d / "seg.dcm"])


case("export-dicom-seg-other-patient", "masks", "error", "a mask whose record names another patient's images",
     ("another patient",))(_export_seg_other_patient)


# =============================================================================== the catalogue

CATALOGUE_INTRO = """\
# Bad inputs: what CervicalAI refuses, accepts or warns about, and what it says

Every row is a case of the hostile-input campaign (`Testing/campaign/run_campaign.py`), run
against the real `cervicalai` command; the message is the one line the user (or a site's IT
reviewer reading the log) sees, with the campaign's folders written as `CASE/` (the case's own
folder) and `BASE/` (the shared synthetic patients). Refusals exit with status 2 (3 for a cohort
extraction that wrote its table but lists failed cases); nothing is written when an input is
refused. `--debug` (or `CERVICALAI_DEBUG=1`) adds the Python traceback to any error.

Rules behind the rows:

- **Nothing the reader made is lost**: no command, with any flag, replaces or deletes a folder or
  file holding a reviewed contour (`*.review.json`); `--overwrite` replaces only the files the
  command itself writes; an output is never equal to, inside or around an input
  (`io/output_guard.py`); every file appears complete or not at all, and every image written is
  read back before it is renamed into place (ITK's NIfTI writer does not report a full disk).
- **No patient identity leaks**: DICOM is de-identified with a whitelist (PS3.15 Basic Profile,
  Clean Descriptors, Modified Dates; `export/deid_profile.py`), manifests and reports carry keyed
  pseudonyms only (no folder names, paths, reviewer names or exact times).
- **No broken input is accepted silently**: image files are checked as stored before ITK reads
  them (`io/image_checks.py`), masks for what they hold (`io/mask_checks.py`), masks and
  transforms for the patient they were made on (`provenance.py`), bundles against the model
  catalogue (`bundles/catalog.py`), readouts against their schema (`docs/schemas/readout.schema.json`).

Reproduce the table and the counts: `python Testing/campaign/run_campaign.py --catalogue docs/bad_inputs.md`
(5-15 minutes on two cores, depending on their load, plus about 2 minutes the first time to build the
synthetic base set; `make campaign` runs it without rewriting this file).
"""


def write_catalogue(path: Path, results: list[dict], work: Path, counts: Counter) -> None:
    def clean(text: str, case_id: str) -> str:
        text = text.replace(str(work / "cases" / case_id), "CASE").replace(str(work / "base"), "BASE")
        text = text.replace(str(work), "WORK").replace(str(REPO), "REPO").replace("|", "\\|")
        return " ".join(text.split())

    lines = [CATALOGUE_INTRO, f"Last run: {len(results)} cases - "
             + ", ".join(f"{counts.get(o, 0)} {o}" for o in OUTCOMES) + ".", ""]
    for area in sorted({r["area"] for r in results}):
        lines += [f"## {area[0].upper()}{area[1:]}", "", "| case | input | outcome | what the user reads |",
                  "|---|---|---|---|"]
        for r in (r for r in results if r["area"] == area):
            lines.append(f"| `{r['id']}` | {clean(r.get('what', ''), r['id'])} | {r['outcome']} | "
                         f"{clean(r['detail'], r['id'])} |")
        lines.append("")
    path.write_text("\n".join(lines))


# =============================================================================== main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cervicalai-campaign",
                        help="work folder (the base set is kept there and reused)")
    parser.add_argument("--only", help="run the cases whose id or area contains this text")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--json", type=Path, help="write every result to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep each case's folder")
    parser.add_argument("--catalogue", type=Path, help="write the catalogue of bad inputs (docs/bad_inputs.md) from the "
                        "results, with each message as the user reads it")
    parser.add_argument("--from-json", type=Path, metavar="RESULTS", help="with --catalogue: write it from the results "
                        "of an earlier run (--json) instead of running the cases")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        write_catalogue(args.catalogue, saved["results"], args.work, Counter(saved["counts"]))
        return 0
    selected = [c for c in CASES if not args.only or args.only in c.id or args.only in c.area]
    if args.list:
        for c in selected:
            print(f"{c.id:45s} {c.area:20s} {c.expect:7s} {c.what}")
        print(f"{len(selected)} cases")
        return 0
    ids = Counter(c.id for c in CASES)
    assert all(n == 1 for n in ids.values()), [i for i, n in ids.items() if n > 1]
    started = time.perf_counter()
    print(f"building the base set in {args.work / 'base'} ...", flush=True)
    base = Base(args.work).build()
    results = []
    for number, item in enumerate(selected, start=1):
        result = run_case(item, base, args.work)
        results.append(result)
        print(f"[{number:3d}/{len(selected)}] {result['outcome']:20s} {item.id:45s} {result['detail'][:150]}", flush=True)
        if not args.keep:
            shutil.rmtree(args.work / "cases" / item.id, ignore_errors=True)
    counts = Counter(r["outcome"] for r in results)
    print(f"\n{len(results)} cases in {(time.perf_counter() - started) / 60:.1f} min")
    for outcome in OUTCOMES + tuple(sorted(set(counts) - set(OUTCOMES))):
        print(f"  {outcome:22s} {counts.get(outcome, 0)}")
    by_area = Counter(r["area"] for r in results)
    print("  by area: " + ", ".join(f"{area} {n}" for area, n in sorted(by_area.items())))
    if args.json:
        args.json.write_text(json.dumps({"counts": dict(counts), "results": results}, indent=1))
    if args.catalogue:
        write_catalogue(args.catalogue, results, args.work, counts)
    bad = [r for r in results if r["outcome"] not in ("clear error", "correct acceptance")]
    for r in bad:
        print(f"  - {r['outcome']}: {r['id']}: {r['detail'][:200]}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
