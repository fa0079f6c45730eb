"""A cohort folder: cohort.csv (one row per case) and the case folders it lists, checked."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.io.case import is_case_folder

log = logging.getLogger(__name__)

COHORT_CSV = "cohort.csv"
GENERATOR_JSON = "generator.json"
SAFE_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


@dataclass


class CohortIndex:
    """A cohort folder: cohort.csv (in its row order) and the folder of each case."""

    path: Path
    frame: Any  # pandas.DataFrame of cohort.csv, case_id as str
    case_dirs: dict[str, Path]
    csv_sha256: str
    generator: dict[str, Any] | None = None

    @property
    def case_ids(self) -> list[str]:
        return list(self.frame["case_id"])


def _looks_like_case(folder: Path) -> bool:
    return is_case_folder(folder) or (folder / "dicom").is_dir()


def read_cohort_table(cohort: str | Path) -> CohortIndex:
    """Open a cohort folder; InputError for a missing cohort.csv, bad or duplicate case IDs, a listed
    case without a folder, or a case folder that cohort.csv does not list."""
    import pandas as pd

    cohort = Path(cohort)
    if not cohort.is_dir():
        raise InputError("cohort folder not found", cohort)
    csv_path = cohort / COHORT_CSV
    if not csv_path.is_file():
        raise InputError(f"no {COHORT_CSV}: a cohort folder needs {COHORT_CSV} with one row per case "
                         "(case_id, center, outcomes such as lnm, clinical values) beside the case folders", cohort)
    try:
        frame = pd.read_csv(csv_path, dtype={"case_id": str, "center": str}, keep_default_na=True)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types for a broken CSV
        raise InputError(f"cannot read {COHORT_CSV} ({exc})", csv_path) from exc
    if "case_id" not in frame.columns:
        raise InputError(f"no 'case_id' column (columns: {', '.join(map(str, frame.columns[:10]))})", csv_path)
    if frame["case_id"].isna().any():
        rows = [str(i + 2) for i in frame.index[frame["case_id"].isna()][:5]]
        raise InputError(f"{int(frame['case_id'].isna().sum())} row(s) without a case_id (line(s) {', '.join(rows)})",
                         csv_path)
    frame["case_id"] = frame["case_id"].str.strip()
    duplicated = sorted(set(frame.loc[frame["case_id"].duplicated(), "case_id"]))
    if duplicated:
        raise InputError(f"duplicate case IDs ({len(duplicated)}): {', '.join(duplicated[:10])}; each case must appear "
                         "once", csv_path)
    unsafe = [c for c in frame["case_id"] if not SAFE_CASE_ID.match(c)]
    if unsafe:
        raise InputError(f"case ID(s) that cannot name a case folder: {', '.join(map(repr, unsafe[:5]))} "
                         "(letters, digits, '.', '_' and '-' only)", csv_path)
    if "center" not in frame.columns:
        log.warning("%s has no 'center' column: ComBat harmonisation and centre splits will not be possible", csv_path)
    case_dirs = {case_id: cohort / case_id for case_id in frame["case_id"]}
    missing = [c for c, d in case_dirs.items() if not d.is_dir()]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise InputError(f"{len(missing)} case(s) listed in {COHORT_CSV} have no case folder: {shown}", cohort)
    listed = set(case_dirs)
    unlisted = sorted(p.name for p in cohort.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and p.name not in listed and _looks_like_case(p))
    if unlisted:
        shown = ", ".join(unlisted[:10]) + (" ..." if len(unlisted) > 10 else "")
        raise InputError(f"{len(unlisted)} case folder(s) are missing from {COHORT_CSV}: {shown}; add a row for each "
                         "(its outcome and clinical values) or move the folder out of the cohort", cohort)
    generator = None
    if (cohort / GENERATOR_JSON).is_file():
        with contextlib.suppress(OSError, ValueError):
            generator = json.loads((cohort / GENERATOR_JSON).read_text(encoding="utf-8"))
    return CohortIndex(path=cohort, frame=frame.reset_index(drop=True), case_dirs=case_dirs,
                       csv_sha256=sha256_file(csv_path), generator=generator if isinstance(generator, dict) else None)


