"""A review worklist: every case of a cohort, per reader, from "not started" to "reviewed".

The source is a cohort folder (case folders, each with its automatic contour from
`cervicalai segment` in `<case>/segmentation/`) or a CSV of case paths (columns `case` and,
optionally, `segmentation`; relative paths are relative to the CSV). What the readers do is kept
in the cohort as plain files, one folder per reader and case, so two readers never write the
same file and a crash or restart loses nothing:

    <root>/cervicalai-review/<reader>/<case_id>/
        status.json              "in progress" or "skipped" (with the reason); written atomically
        working/tumor.nii.gz     the reader's working copy, saved after every edit (the draft)
        reviewed-1/              the first "Mark as reviewed": appears complete or not at all
            tumor.nii.gz                 the reviewed mask on the T2WI grid
            tumor.nii.gz.review.json     the review record (CervicalAILib.review.record: reviewer, time,
                                         SHA-256, Dice/HD95/volume change against the automatic contour)
            review_notes.json            rating (1-5) and comment
        reviewed-2/ ...          a later review of the same case by the same reader (never replaces reviewed-1)

`<root>` is the cohort folder, or the CSV's folder. A case is "reviewed" by a reader when the
newest reviewed-N folder holds a valid review record (the mask still has its recorded SHA-256).
Nothing here deletes or replaces a reviewed folder.

Pure engine code: no Slicer, no trame. Used by `cervicalai review`, the web review app and the
hub's worklist panel in Slicer.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.contracts.review import ReviewRecord
from CervicalAILib.contracts.segmentation import SEGMENTATION_SUMMARY
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.io import measurements as measure
from CervicalAILib.io.case import is_case_folder, load_case, read_transforms
from CervicalAILib.io.geometry import resample_to_reference, same_grid
from CervicalAILib.io.images import read_image, write_image
from CervicalAILib.review import record as engine_review

REVIEW_DIR = "cervicalai-review"
SEGMENTATION_DIR = "segmentation"  # `cervicalai segment CASE --out CASE/segmentation`
STATUS_FILE = "status.json"
WORKING_DIR = "working"
MASK_FILE = "tumor.nii.gz"  # as `cervicalai segment` and the Segment module's Mark as reviewed name it
NOTES_FILE = "review_notes.json"
REVIEWED_PREFIX = "reviewed-"
STATUS_SCHEMA = "cervicalai.worklist-status/1"

NOT_STARTED, IN_PROGRESS, REVIEWED, SKIPPED = "not started", "in progress", "reviewed", "skipped"
STATUSES = (NOT_STARTED, IN_PROGRESS, REVIEWED, SKIPPED)
# The reader's rating of the automatic contour (issue 15).
RATINGS = {
    1: "acceptable",
    2: "minor edits",
    3: "major edits",
    4: "tumour not visible",
    5: "image unusable",
}
EMPTY_RATINGS = (4, 5)  # the ratings under which an empty reviewed contour is accepted
MAX_COMMENT = 2000
_READER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._'-]{0,63}")
_CASE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_REVIEWED_PATTERN = re.compile(re.escape(REVIEWED_PREFIX) + r"([1-9][0-9]*)")


def reader_folder_name(reader: str) -> str:
    """The reader's folder: the name lower-cased, spaces as '_' ("Dr Ann Lee" -> "dr_ann_lee").

    A reader name is required: letters, digits, spaces and . _ ' - (up to 64 characters, starting
    with a letter or digit), so that it can never name a path outside the reader's own folder.
    """
    name = (reader or "").strip()
    if not name:
        raise InputError("a reader name is required (e.g. --reader 'Dr Lee')")
    if not _READER_PATTERN.fullmatch(name):
        raise InputError(f"reader name {name!r} may hold letters, digits, spaces and . _ ' - only (at most 64 characters)")
    return re.sub(r"[ ']+", "_", name.lower())


def _now(now: _dt.datetime | None = None) -> str:
    return (now or _dt.datetime.now(_dt.UTC)).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class WorklistCase:
    """One case of the worklist: its folder and its automatic segmentation (None when not run)."""

    case_id: str
    folder: Path
    segmentation: Path | None

    @property
    def automatic_mask_path(self) -> Path | None:
        if self.segmentation is None:
            return None
        path = self.segmentation / MASK_FILE
        return path if path.is_file() else None

    def segmentation_summary(self) -> dict[str, Any]:
        """segmentation.json of the automatic contour ({} without one)."""
        if self.segmentation is None:
            return {}
        path = self.segmentation / SEGMENTATION_SUMMARY
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"segmentation summary is not valid JSON ({exc})", path) from exc

    def automatic_model(self) -> str | None:
        """"name@version" of the model that drew the automatic contour, as the Segment module records it."""
        return ((self.segmentation_summary().get("model") or {}).get("label")) or None


@dataclass
class ReviewEntry:
    """One completed review (a reviewed-N folder) of a case by a reader."""

    folder: Path
    record: ReviewRecord
    rating: int | None = None
    comment: str = ""

    @property
    def mask_path(self) -> Path:
        return self.folder / MASK_FILE

    @property
    def number(self) -> int:
        return int(self.folder.name[len(REVIEWED_PREFIX):])


@dataclass
class CaseStatus:
    """A reader's status of one case."""

    case_id: str
    status: str
    skip_reason: str = ""
    updated_at: str | None = None
    reviews: list[ReviewEntry] = field(default_factory=list)
    has_working_copy: bool = False
    problem: str = ""  # e.g. a reviewed mask changed after its review

    @property
    def latest(self) -> ReviewEntry | None:
        return self.reviews[-1] if self.reviews else None


class Worklist:
    """The cases of a cohort and the review files of one or all readers (see the module doc)."""

    def __init__(self, root: Path, cases: list[WorklistCase], source: Path):
        self.root = root
        self.source = source
        self.cases = cases
        self._by_id = {case.case_id: case for case in cases}

    # -- cases --------------------------------------------------------------------------------------
    def case(self, case_id: str) -> WorklistCase:
        """The case with this id; InputError for any other text (the only way a case is opened)."""
        case = self._by_id.get(case_id) if isinstance(case_id, str) else None
        if case is None:
            raise InputError(f"case {case_id!r} is not in the worklist of {self.source}")
        return case

    def case_ids(self) -> list[str]:
        return [case.case_id for case in self.cases]

    @property
    def review_root(self) -> Path:
        return self.root / REVIEW_DIR

    def readers(self) -> list[str]:
        """Folder names of the readers who have review files in this cohort."""
        if not self.review_root.is_dir():
            return []
        return sorted(p.name for p in self.review_root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def reader(self, reader: str) -> ReaderWorklist:
        return ReaderWorklist(self, reader)


class ReaderWorklist:
    """One reader's view of the worklist: statuses, working copies and reviews of that reader only."""

    def __init__(self, worklist: Worklist, reader: str):
        self.worklist = worklist
        self.reader_name = reader.strip()
        self.folder_name = reader_folder_name(reader)
        self.folder = worklist.review_root / self.folder_name

    # -- files --------------------------------------------------------------------------------------
    def case_folder(self, case_id: str) -> Path:
        return self.folder / self.worklist.case(case_id).case_id

    def working_mask_path(self, case_id: str) -> Path:
        return self.case_folder(case_id) / WORKING_DIR / MASK_FILE

    def _status_data(self, case_id: str) -> dict[str, Any]:
        path = self.case_folder(case_id) / STATUS_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"worklist status is not valid JSON ({exc})", path) from exc
        if not isinstance(data, dict) or data.get("status") not in STATUSES:
            raise InputError("worklist status has no valid 'status'", path)
        return data

    def _write_status(self, case_id: str, status: str, now: _dt.datetime | None = None, **extra: Any) -> None:
        data = {
            "schema": STATUS_SCHEMA,
            "case_id": case_id,
            "reader": self.reader_name,
            "status": status,
            "updated_at": _now(now),
            "reviews_known": len(self.reviews(case_id)),
            **extra,
        }
        atomic.write_json(self.case_folder(case_id) / STATUS_FILE, data)

    def reviews(self, case_id: str) -> list[ReviewEntry]:
        """The reader's completed reviews of the case, oldest first (complete reviewed-N folders)."""
        folder = self.case_folder(case_id)
        found: list[tuple[int, Path]] = []
        if folder.is_dir():
            for path in folder.iterdir():
                match = _REVIEWED_PATTERN.fullmatch(path.name)
                if match and path.is_dir() and (path / MASK_FILE).is_file():
                    found.append((int(match.group(1)), path))
        entries = []
        for _number, path in sorted(found):
            record = engine_review.read_review(path / MASK_FILE)
            notes = {}
            if (path / NOTES_FILE).is_file():
                try:
                    notes = json.loads((path / NOTES_FILE).read_text(encoding="utf-8"))
                except json.JSONDecodeError as exc:
                    raise InputError(f"review notes are not valid JSON ({exc})", path / NOTES_FILE) from exc
            entries.append(ReviewEntry(path, record, notes.get("rating"), notes.get("comment") or ""))
        return entries

    # -- status -------------------------------------------------------------------------------------
    def status(self, case_id: str) -> CaseStatus:
        self.worklist.case(case_id)
        data = self._status_data(case_id)
        reviews = self.reviews(case_id)
        working = self.working_mask_path(case_id).is_file()
        status = data.get("status", NOT_STARTED if not working else IN_PROGRESS)
        if status == REVIEWED and not reviews:
            status = IN_PROGRESS if working else NOT_STARTED  # its reviewed folder is gone
        if reviews and (not data or len(reviews) > int(data.get("reviews_known", 0))):
            status = REVIEWED  # a review completed after the last status write (a crash in between)
        problem = ""
        if status == REVIEWED and reviews and not reviews[-1].record.reviewed:
            problem = f"{reviews[-1].folder.name}/{MASK_FILE} was changed after its review"
        return CaseStatus(case_id, status, data.get("skip_reason") or "", data.get("updated_at"), reviews, working, problem)

    def statuses(self) -> list[CaseStatus]:
        return [self.status(case_id) for case_id in self.worklist.case_ids()]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for status in self.statuses():
            counts[status.status] += 1
        return counts

    def next_case(self, after: str | None = None) -> str | None:
        """The next case not yet reviewed or skipped (after `after`, wrapping round); None when all are done."""
        ids = self.worklist.case_ids()
        start = ids.index(self.worklist.case(after).case_id) + 1 if after is not None else 0
        for case_id in ids[start:] + ids[:start]:
            if self.status(case_id).status in (NOT_STARTED, IN_PROGRESS):
                return case_id
        return None

    # -- changes ------------------------------------------------------------------------------------
    def start(self, case_id: str, now: _dt.datetime | None = None) -> CaseStatus:
        """Mark the case "in progress" (opening it); a reviewed or skipped case keeps its status."""
        current = self.status(case_id)
        if current.status == NOT_STARTED:
            self._write_status(case_id, IN_PROGRESS, now)
            return self.status(case_id)
        return current

    def reopen(self, case_id: str, now: _dt.datetime | None = None) -> CaseStatus:
        """Take a reviewed or skipped case up again ("in progress"); its reviews stay as they are."""
        self._write_status(case_id, IN_PROGRESS, now)
        return self.status(case_id)

    def skip(self, case_id: str, reason: str, now: _dt.datetime | None = None) -> CaseStatus:
        reason = (reason or "").strip()
        if not reason:
            raise InputError(f"skipping case {case_id!r} needs a reason")
        self._write_status(case_id, SKIPPED, now, skip_reason=reason[:MAX_COMMENT])
        return self.status(case_id)

    def working_mask(self, case_id: str) -> sitk.Image | None:
        """The reader's working copy of the case (None when the reader has not edited it yet)."""
        path = self.working_mask_path(case_id)
        return read_image(path) if path.is_file() else None

    def starting_mask_path(self, case_id: str) -> tuple[Path | None, str]:
        """The mask the reader starts from and what it is: their working copy (autosaved edits),
        else their newest reviewed copy, else the automatic contour, else none ("empty")."""
        case = self.worklist.case(case_id)
        working = self.working_mask_path(case_id)
        if working.is_file():
            return working, "working copy"
        latest = self.status(case_id).latest
        if latest is not None:
            return latest.mask_path, latest.folder.name
        if case.automatic_mask_path is not None:
            return case.automatic_mask_path, "automatic contour"
        return None, "empty"

    def save_working(self, case_id: str, mask: sitk.Image) -> Path:
        """Autosave of the working copy (atomic: a crash leaves the previous or the new copy)."""
        path = self.working_mask_path(case_id)
        write_image(sitk.Cast(mask > 0, sitk.sitkUInt8), path)
        if not (self.case_folder(case_id) / STATUS_FILE).is_file():
            self._write_status(case_id, IN_PROGRESS)
        return path

    def mark_reviewed(
        self,
        case_id: str,
        mask: sitk.Image,
        rating: int | None = None,
        comment: str = "",
        now: _dt.datetime | None = None,
    ) -> ReviewEntry:
        """Freeze the reader's mask as a new reviewed-N folder with the engine's review record.

        The record is the one the Segment module's Mark as reviewed writes (CervicalAILib.review.record:
        reviewer, UTC time, SHA-256, edit metrics against the automatic contour, model). The folder
        is built under a temporary name and appears complete; no earlier review is touched.
        """
        case = self.worklist.case(case_id)
        rating = _check_rating(rating)
        comment = (comment or "").strip()
        if len(comment) > MAX_COMMENT:
            raise InputError(f"comment is longer than {MAX_COMMENT} characters")
        mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
        if rating not in EMPTY_RATINGS and not sitk.GetArrayViewFromImage(mask).any():
            raise InputError(f"case {case_id!r}: the tumour contour is empty; draw it, or rate the case "
                             f"{' or '.join(f'{r} ({RATINGS[r]})' for r in EMPTY_RATINGS)}")
        automatic = None
        if case.automatic_mask_path is not None:
            automatic = sitk.Cast(read_image(case.automatic_mask_path) > 0, sitk.sitkUInt8)
            if not same_grid(automatic, mask, tolerance=1e-3):
                raise InputError(f"the reviewed mask of {case_id!r} is not on the grid of its automatic contour (the T2WI)")
            automatic.CopyInformation(mask)
        reviews = self.reviews(case_id)
        number = reviews[-1].number + 1 if reviews else 1
        folder = self.case_folder(case_id) / f"{REVIEWED_PREFIX}{number}"
        with atomic.atomic_directory(folder) as tmp:
            write_image(mask, tmp / MASK_FILE)
            engine_review.mark_reviewed(tmp / MASK_FILE, self.reader_name, automatic, case.automatic_model(), now)
            atomic.write_json(tmp / NOTES_FILE, {
                "rating": rating,
                "rating_text": RATINGS.get(rating) if rating else None,
                "comment": comment,
            })
        self._write_status(case_id, REVIEWED, now, latest_review=folder.name)
        return self.reviews(case_id)[-1]


def _check_rating(rating: Any) -> int | None:
    if rating in (None, ""):
        return None
    try:
        value = int(rating)
    except (TypeError, ValueError):
        value = None
    if value not in RATINGS or str(rating).strip() not in (str(value), f"{value}.0"):
        choices = ", ".join(f"{k} {v}" for k, v in RATINGS.items())
        raise InputError(f"rating {rating!r} must be one of {choices}")
    return value


# -- opening a worklist ------------------------------------------------------------------------------

def open_worklist(source: str | Path) -> Worklist:
    """The worklist of a cohort folder or of a CSV of case paths (see the module doc)."""
    source = Path(source)
    if source.is_dir():
        return _from_folder(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _from_csv(source)
    raise InputError("not a cohort folder or a CSV of case paths", source)


def _segmentation_folder(case_folder: Path) -> Path | None:
    folder = case_folder / SEGMENTATION_DIR
    return folder if (folder / MASK_FILE).is_file() else None


def _check_case_id(case_id: str, where: Path) -> None:
    if not _CASE_ID_PATTERN.fullmatch(case_id):
        raise InputError(f"case folder name {case_id!r} must be letters, digits, '.', '_' or '-'", where)


def _from_folder(folder: Path) -> Worklist:
    root = folder.resolve()
    cases = []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.name == REVIEW_DIR or not is_case_folder(path):
            continue
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            # a symbolic link out of the cohort: the review app opens nothing outside the cohort
            raise InputError(f"case folder {path.name!r} links outside the cohort ({resolved})", folder)
        _check_case_id(path.name, path)
        cases.append(WorklistCase(path.name, resolved, _segmentation_folder(resolved)))
    if not cases:
        raise InputError("no case folders (with T2W.nii.gz) in the cohort folder", folder)
    return Worklist(root, cases, folder)


def _from_csv(path: Path) -> Worklist:
    root = path.resolve().parent
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read the case list ({exc})", path) from exc
    if not rows or "case" not in rows[0]:
        raise InputError("the case list needs a 'case' column (case folder paths) and optionally 'segmentation'", path)
    cases: list[WorklistCase] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        text = (row.get("case") or "").strip()
        if not text:
            raise InputError(f"line {line}: empty 'case' path", path)
        folder = (root / text).resolve()
        if not is_case_folder(folder):
            raise InputError(f"line {line}: {text!r} is not a case folder (expected {folder}/T2W.nii.gz)", path)
        _check_case_id(folder.name, folder)
        if folder.name in seen:
            raise InputError(f"line {line}: case id {folder.name!r} appears twice (case ids are the folder names)", path)
        seen.add(folder.name)
        seg_text = (row.get("segmentation") or "").strip()
        if seg_text:
            segmentation = (root / seg_text).resolve()
            if not (segmentation / MASK_FILE).is_file():
                raise InputError(f"line {line}: {seg_text!r} has no {MASK_FILE} (a `cervicalai segment` output folder)", path)
        else:
            segmentation = _segmentation_folder(folder)
        cases.append(WorklistCase(folder.name, folder, segmentation))
    return Worklist(root, cases, path)


# -- tables ------------------------------------------------------------------------------------------

def status_table(worklist: Worklist, readers: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the worklist: one row per case, one status column per reader."""
    names = readers if readers else worklist.readers()
    reader_lists = [worklist.reader(name) for name in names]
    header = ["case", "automatic contour"] + [r.folder_name for r in reader_lists]
    rows = []
    for case in worklist.cases:
        automatic = "yes" if case.automatic_mask_path is not None else "not run"
        cells = [case.case_id, automatic]
        for reader in reader_lists:
            status = reader.status(case.case_id)
            text = status.status
            if status.status == SKIPPED and status.skip_reason:
                text += f" ({status.skip_reason})"
            if status.latest is not None and status.status == REVIEWED:
                rating = status.latest.rating
                text += f" [{status.latest.folder.name}" + (f", rating {rating}" if rating else "") + "]"
            if status.problem:
                text += f" ! {status.problem}"
            cells.append(text)
        rows.append(cells)
    return header, rows


def agreement_table(worklist: Worklist, reader_a: str, reader_b: str) -> list[dict[str, Any]]:
    """Per case reviewed by both readers: Dice and HD95 between their latest reviewed masks, and volumes."""
    a, b = worklist.reader(reader_a), worklist.reader(reader_b)
    if a.folder_name == b.folder_name:
        raise InputError("the agreement table needs two different readers")
    rows = []
    for case_id in worklist.case_ids():
        first, second = a.status(case_id), b.status(case_id)
        if first.status != REVIEWED or second.status != REVIEWED or not first.latest or not second.latest:
            continue
        mask_a = sitk.Cast(read_image(first.latest.mask_path) > 0, sitk.sitkUInt8)
        mask_b = sitk.Cast(read_image(second.latest.mask_path) > 0, sitk.sitkUInt8)
        if not same_grid(mask_a, mask_b, tolerance=1e-3):
            raise InputError(f"the two readers' masks of {case_id!r} are on different grids", second.latest.mask_path)
        mask_b.CopyInformation(mask_a)
        metrics = measure.edit_metrics(mask_a, mask_b)
        rows.append({
            "case_id": case_id,
            "dice": metrics.dice,
            "hd95_mm": metrics.hd95_mm,
            f"volume_ml_{a.folder_name}": metrics.automatic_volume_ml,
            f"volume_ml_{b.folder_name}": metrics.reviewed_volume_ml,
        })
    return rows


# -- what a reader sees of a case --------------------------------------------------------------------

def images_on_t2_grid(case: WorklistCase) -> tuple[dict[str, sitk.Image], list[str]]:
    """The case's sequences resampled onto its T2WI grid for display beside it, and notes.

    Each sequence is carried by the registration transform its automatic segmentation stored
    (`<segmentation>/transforms/<ROLE>.tfm`, T2WI -> sequence), so the contour drawn on the T2WI
    lies on the same anatomy in every view; without one it is resampled in scanner coordinates
    (and a note says so). Nothing is registered here: that is the segment step's work.
    """
    loaded = load_case(case.folder)
    t2 = loaded.image("T2W")
    transforms = read_transforms(case.segmentation) if case.segmentation is not None else {}
    images = {"T2W": t2}
    notes = []
    for role in loaded.roles:
        if role == "T2W":
            continue
        image = loaded.image(role)
        if same_grid(image, t2):
            images[role] = image
            continue
        transform = transforms.get(role)
        if transform is None:
            notes.append(f"{role}: no registration transform stored with the automatic contour; shown in scanner coordinates")
        images[role] = resample_to_reference(image, t2, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return images, notes


def flagged_slices(case: WorklistCase, mask: sitk.Image | None) -> list[dict[str, Any]]:
    """The T2WI slices to check first (segmentation.json, lowest confidence) with the point to jump
    to in RAS (mm): the tumour's centre in that slice, else the slice centre. Slices numbered from 0."""
    summary = case.segmentation_summary()
    entries = summary.get("flagged_slices") or []
    if not entries or mask is None:
        return []
    array = sitk.GetArrayViewFromImage(mask)
    flagged = []
    for entry in entries:
        k = int(entry["slice"])
        if not 0 <= k < array.shape[0]:
            raise InputError(f"flagged slice {k} is outside the T2WI (slices 0-{array.shape[0] - 1})",
                             case.segmentation / SEGMENTATION_SUMMARY)
        rows, columns = np.nonzero(array[k])
        if rows.size:
            index = (float(columns.mean()), float(rows.mean()), float(k))
        else:
            index = ((array.shape[2] - 1) / 2, (array.shape[1] - 1) / 2, float(k))
        x, y, z = mask.TransformContinuousIndexToPhysicalPoint(index)
        flagged.append({"slice": k, "confidence": float(entry["confidence"]), "ras": [-x, -y, z]})
    return flagged
