"""The hub's review worklist panel, without Qt or MRML: what the table shows, which case comes
next, what to load for a case, and the writes (working copy, Mark as reviewed, skip).

It works on the same files as `cervicalai review` and the web review app
(`CervicalAILib.review.worklist`): a cohort reviewed partly in Slicer and partly in the browser has one
status per reader and case. "Mark as reviewed" writes the engine's review record through
`ReaderWorklist.mark_reviewed`, the same function the browser uses (and the same record as the
Segment module's own Mark as reviewed: reviewer, time, SHA-256, edit metrics, model).

The widget (CervicalAI.py) turns `rows()` into its table, loads `case_to_load()` into the scene
(volumes, the automatic result into the Segment module, the starting mask as the draft), and
hands the draft's tumour mask (on the T2WI grid) back to `save_working` / `mark_reviewed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import ROLES, find_role_file
from CervicalAILib.review.worklist import RATINGS, REVIEWED, SKIPPED, ReaderWorklist, open_worklist


@dataclass(frozen=True)
class PanelRow:
    case_id: str
    status: str
    text: str  # what the status column shows
    rating: str


@dataclass(frozen=True)
class CaseToLoad:
    """What the widget loads for a case."""

    case_id: str
    folder: Path  # the case folder (each sequence on its own grid)
    images: dict[str, Path]  # role -> image file
    segmentation: Path | None  # `cervicalai segment` output: import it as the automatic result
    start_mask: Path | None  # the draft starts from this mask (None: the automatic result as it is, or empty)
    started_from: str
    rating: int | None = None
    comment: str = ""
    notes: list[str] = field(default_factory=list)


class WorklistPanel:
    """One reader's worklist for the hub panel (see the module doc)."""

    def __init__(self, source: str | Path, reader: str):
        if not str(source).strip():
            raise InputError("choose a cohort folder (or a CSV of case folders) first")
        self.worklist = open_worklist(source)
        self.reader: ReaderWorklist = self.worklist.reader(reader)

    @staticmethod
    def rating_choices() -> list[tuple[int | None, str]]:
        return [(None, "(no rating)")] + [(value, f"{value} {text}") for value, text in RATINGS.items()]

    def rows(self) -> list[PanelRow]:
        rows = []
        for status in self.reader.statuses():
            text = status.status
            if status.status == SKIPPED and status.skip_reason:
                text += f": {status.skip_reason}"
            if status.problem:
                text += f" ({status.problem})"
            rating = status.latest.rating if status.status == REVIEWED and status.latest is not None else None
            rows.append(PanelRow(status.case_id, status.status, text, str(rating or "")))
        return rows

    def progress_text(self) -> str:
        counts = self.reader.counts()
        total = len(self.worklist.cases)
        text = f"{counts[REVIEWED]} of {total} reviewed by {self.reader.reader_name}"
        return text + (f", {counts[SKIPPED]} skipped" if counts[SKIPPED] else "")

    def next_case(self, current: str | None = None) -> str | None:
        """The next case still to review after `current` (wrapping round); None when all are done."""
        return self.reader.next_case(after=current)

    def previous_case(self, current: str | None) -> str:
        ids = self.worklist.case_ids()
        if current is None:
            return ids[0]
        return ids[(ids.index(self.worklist.case(current).case_id) - 1) % len(ids)]

    def case_to_load(self, case_id: str) -> CaseToLoad:
        """What to load for the case, and mark it "in progress" (opening it)."""
        case = self.worklist.case(case_id)
        status = self.reader.start(case.case_id)
        images = {role: path for role in ROLES if (path := find_role_file(case.folder, role)) is not None}
        start, what = self.reader.starting_mask_path(case.case_id)
        if start is not None and start == case.automatic_mask_path:
            start = None  # the automatic result imported as it is gives the draft
        notes = []
        if case.segmentation is None:
            notes.append("No automatic contour: run `cervicalai review prepare` on the cohort, or draw the tumour.")
        latest = status.latest
        return CaseToLoad(case.case_id, case.folder, images, case.segmentation, start, what,
                          latest.rating if latest is not None else None, latest.comment if latest is not None else "",
                          notes)

    def save_working(self, case_id: str, mask: sitk.Image) -> Path:
        return self.reader.save_working(case_id, mask)

    def mark_reviewed(self, case_id: str, mask: sitk.Image, rating: int | None = None, comment: str = "") -> str:
        """Freeze the reader's mask (a new reviewed-N folder); returns the line the panel shows."""
        self.reader.save_working(case_id, mask)
        entry = self.reader.mark_reviewed(case_id, mask, rating, comment)
        metrics = entry.record.edit_metrics
        if metrics is None:
            change = "drawn by the reader (no automatic contour)"
        else:
            change = f"Dice {metrics.dice:.3f} with the automatic contour, volume {metrics.reviewed_volume_ml:.2f} mL"
        return f"{case_id}: reviewed by {entry.record.reviewer} ({entry.folder.name}); {change}"

    def skip(self, case_id: str, reason: str) -> str:
        status = self.reader.skip(case_id, reason)
        return f"{case_id}: skipped ({status.skip_reason})"
