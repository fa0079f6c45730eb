"""De-identification for export to annotation partners (DICOM PS3.15, keyed pseudonyms).

DICOM: the Basic Application Level Confidentiality Profile (PS3.15 Annex E) applied as a
*whitelist* (`deid_profile.py`): an exported object keeps only the attributes the MR Image or
Segmentation IOD needs, each with its action, and loses every other attribute (private, curve
and overlay groups included), wherever a site or vendor put a name or a number. Kept values are
checked: numbers must be numbers, code strings known terms (ImageType values outside the defined
terms are dropped), Manufacturer a vendor's name; descriptors are cleaned (Clean Descriptors
Option: SeriesDescription becomes the role); type 2 attributes that may identify
(PositionReferenceIndicator, ReferringPhysicianName, AccessionNumber, StudyID, PatientBirthDate,
PatientSex) are kept empty. An image with BurnedInAnnotation YES is refused (pixels are not cleaned).

- UIDs that are not registered DICOM UIDs are replaced by keyed UIDs, consistently, so that a SEG
  still references its de-identified images;
- dates: `dates="shift"` moves every date by a per-patient keyed offset (whole days into the
  past, the same for every export of that patient: intervals survive; times of day kept; the
  Retain Longitudinal Temporal Information with Modified Dates Option), `dates="remove"` empties
  dates and times;
- PatientName and PatientID become the patient's pseudonym, a SEG's ContentCreatorName the
  reviewer's; PatientIdentityRemoved = YES, DeidentificationMethod and its code sequence
  (113100 Basic Profile, 113105 Clean Descriptors, 113107 Modified Dates) say what was done, and
  `Deidentifier.options()` states it in export manifests.

The PS3.15 Table E.1-1 (`ps3_15_basic_profile.json`) is kept as the reference the whitelist is
tested against: nothing the table removes or replaces is kept verbatim.

Pseudonyms, UIDs and date offsets are HMAC-SHA256 of the original value under a secret key, so
the same patient maps to the same pseudonym (and the same UID to the same new UID) in every
export made with the same key, and nobody without the key can reverse or recompute them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from CervicalAILib import __version__
from CervicalAILib.core.errors import InputError
from CervicalAILib.export.deid_profile import (
    CHARACTER_SETS,
    DATE,
    EMPTY,
    KEEP,
    MANUFACTURERS,
    PSEUDONYM,
    REQUIRED_EMPTY,
    SEQUENCE,
    TERMS,
    TIME,
    UID,
    whitelist,
)

KEY_ENV = "CERVICALAI_DEID_KEY"
MIN_KEY_BYTES = 16
DATE_MODES = ("shift", "remove")
# Offsets are 1 .. MAX_SHIFT_DAYS days into the past.
MAX_SHIFT_DAYS = 3650
PSEUDONYM_PREFIX = "CAI-"
PROFILE_FILE = Path(__file__).with_name("ps3_15_basic_profile.json")

# File-meta attributes kept (the others may name the sending site or carry private data).
FILE_META_KEEP = {"FileMetaInformationGroupLength", "FileMetaInformationVersion", "MediaStorageSOPClassUID",
                  "MediaStorageSOPInstanceUID", "TransferSyntaxUID", "ImplementationClassUID",
                  "ImplementationVersionName"}
NUMERIC_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"}
TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "PN", "AE", "UC", "UR", "CS", "AS"}


def _valid_time(value: Any) -> bool:
    return bool(re.fullmatch(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?", str(value or "").strip()))


# Dummy values (action D) by value representation.
DUMMY_TEXT = "ANONYMIZED"
DUMMY_BY_VR: dict[str, Any] = {
    "DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000Y", "PN": "ANONYMOUS",
    "IS": "0", "DS": "0", "US": 0, "SS": 0, "UL": 0, "SL": 0, "FL": 0.0, "FD": 0.0, "UV": 0, "SV": 0,
    "OB": b"", "OW": b"", "OF": b"", "OD": b"", "OL": b"", "OV": b"", "UN": b"",
}


@lru_cache(maxsize=1)
def profile_table() -> dict[int, tuple[str, str, bool]]:
    """Table E.1-1: tag -> (basic profile action as written in the standard, name, date-shiftable)."""
    document = json.loads(PROFILE_FILE.read_text(encoding="utf-8"))
    return {int(tag, 16): (action, name, modified == "C") for tag, name, action, modified in document["attributes"]}


def resolve_action(code: str) -> str:
    """One action from the table's code: D if offered, else Z, else X; 'X/Z/U*' -> 'U*'."""
    if code.endswith("U*"):
        return "U*"
    options = code.split("/")
    for preferred in ("D", "Z", "U", "K", "C", "X"):
        if preferred in options:
            return preferred
    raise ValueError(f"unknown confidentiality profile action {code!r}")


def load_key(key: str | None = None, key_file: str | Path | None = None) -> bytes:
    """The secret key for keyed pseudonyms: `key`, else the content of `key_file`, else $CERVICALAI_DEID_KEY.

    InputError when none is given or the key is shorter than 16 bytes (a short key can be guessed).
    """
    if key is not None and key_file is not None:
        raise InputError("give the de-identification key either directly (--key) or as a file (--key-file), not both")
    source = "--key"
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise InputError("key file not found", path)
        key = path.read_text(encoding="utf-8").strip()
        source = str(path)
    elif key is None:
        key = os.environ.get(KEY_ENV)
        source = f"${KEY_ENV}"
    if not key:
        raise InputError(
            f"de-identification needs a secret key: --key KEY, --key-file FILE or the {KEY_ENV} environment variable "
            "(keep it: the same key gives the same pseudonyms in every export)"
        )
    data = key.encode("utf-8")
    if len(data) < MIN_KEY_BYTES:
        raise InputError(f"the de-identification key from {source} is too short ({len(data)} bytes; at least "
                         f"{MIN_KEY_BYTES} needed)")
    return data


def _shift_da(value: str, days: int) -> str:
    text = value.strip()
    if not re.fullmatch(r"\d{8}", text):
        return DUMMY_BY_VR["DA"]  # not a plain date (e.g. a range or garbage): replace it
    try:
        date = _dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return DUMMY_BY_VR["DA"]
    return (date - _dt.timedelta(days=days)).strftime("%Y%m%d")


def _shift_dt(value: str, days: int) -> str:
    text = value.strip()
    if len(text) < 8 or not text[:8].isdigit():
        return DUMMY_BY_VR["DT"]
    return _shift_da(text[:8], days) + text[8:]


@dataclass
class Deidentifier:
    """Keyed pseudonyms, UIDs and date offsets, and the PS3.15 profile for DICOM data sets.

    key: secret bytes (`load_key`); dates: "shift" (per-patient offset) or "remove".
    """

    key: bytes
    dates: str = "shift"
    uid_map: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.dates not in DATE_MODES:
            raise InputError(f"unknown date handling {self.dates!r} (choose {' or '.join(DATE_MODES)})")
        if len(self.key) < MIN_KEY_BYTES:
            raise InputError(f"the de-identification key is too short ({len(self.key)} bytes; at least {MIN_KEY_BYTES})")

    # --- keyed values ---------------------------------------------------------------------------

    def _digest(self, purpose: str, value: str) -> bytes:
        return hmac.new(self.key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()

    def pseudonym(self, patient_id: str) -> str:
        """The patient's pseudonym, e.g. 'CAI-7F3A09C2B41D' (same key and ID: same pseudonym)."""
        patient_id = str(patient_id).strip()
        if not patient_id:
            raise InputError("cannot make a pseudonym for an empty patient ID")
        return PSEUDONYM_PREFIX + self._digest("patient", patient_id).hex()[:12].upper()

    def reviewer_pseudonym(self, reviewer: str) -> str:
        return "R-" + self._digest("reviewer", reviewer.strip()).hex()[:8].upper()

    def date_offset_days(self, patient_id: str) -> int:
        """Days this patient's dates move into the past (1 .. 3650), keyed on the patient ID."""
        return 1 + int.from_bytes(self._digest("date", str(patient_id).strip())[:8], "big") % MAX_SHIFT_DAYS

    def uid(self, original: str) -> str:
        """A new UID under the 2.25 (UUID-derived) root, from the keyed hash of the original."""
        original = str(original).strip().rstrip("\x00")
        if original not in self.uid_map:
            number = int.from_bytes(self._digest("uid", original)[:16], "big")
            self.uid_map[original] = f"2.25.{number}"
        return self.uid_map[original]

    def shift_date(self, value: str, patient_id: str) -> str | None:
        """A DICOM DA value shifted by the patient's offset; None when dates are removed."""
        if self.dates == "remove":
            return None
        return _shift_da(value, self.date_offset_days(patient_id))

    def shift_iso(self, value: str | None, patient_id: str) -> str | None:
        """An ISO 8601 time stamp (e.g. a review time) shifted by whole days; None when removed."""
        if value is None or self.dates == "remove":
            return None
        try:
            moment = _dt.datetime.fromisoformat(str(value))
        except ValueError:
            return None
        return (moment - _dt.timedelta(days=self.date_offset_days(patient_id))).isoformat()

    def method_values(self) -> list[str]:
        """DeidentificationMethod values (LO, 64 characters each, several values)."""
        return [f"CervicalAI {__version__}", "PS3.15 Basic Application Level Confidentiality Profile",
                "whitelist of attributes; all others removed", "Clean Descriptors Option",
                "keyed pseudonyms and UIDs (HMAC-SHA256)",
                "dates shifted per patient" if self.dates == "shift" else "dates removed"]

    def method_text(self) -> str:
        return "; ".join(self.method_values())

    def options(self) -> dict[str, Any]:
        """The profile and the options applied, retained and not applied (PS3.15 Table E.1-1 columns),
        as stated in export manifests."""
        applied = [{"code": code, "meaning": meaning} for code, meaning in self._method_codes()]
        not_applied = ["Retain Patient Characteristics Option (sex, age, size and weight are removed)",
                       "Retain Device Identity Option (serial numbers, station names removed)",
                       "Retain Institution Identity Option", "Retain UIDs Option (UIDs are replaced by keyed UIDs)",
                       "Retain Safe Private Option (every private attribute is removed)",
                       "Clean Pixel Data Option (not needed: images with BurnedInAnnotation YES are refused)"]
        if self.dates != "shift":
            not_applied.append("Retain Longitudinal Temporal Information (dates and times are removed)")
        return {
            "profile": "PS3.15 Annex E Basic Application Level Confidentiality Profile (113100)",
            "options_applied": applied,
            "options_not_applied": not_applied,
            "attributes": "whitelist: only the attributes listed in CervicalAILib/export/deid_profile.py are kept "
                          "(technical values checked, descriptors cleaned, identities pseudonymised, UIDs replaced, "
                          "dates " + ("shifted" if self.dates == "shift" else "removed") + "); every other attribute, "
                          "every private, curve and overlay group is removed",
        }

    # --- DICOM ----------------------------------------------------------------------------------

    def dataset(self, ds: Any, patient_id: str | None = None, kind: str = "image") -> Any:
        """A de-identified copy of a pydicom Dataset (the original is not changed).

        `patient_id` keys the pseudonym and the date offset (default: the data set's PatientID).
        kind: "image" (a source MR image) or "segmentation" (a SEG CervicalAI wrote); see deid_profile.
        """
        import copy

        from pydicom.dataset import Dataset

        patient_id = str(patient_id if patient_id is not None else ds.get("PatientID", "") or "").strip()
        if not patient_id:
            raise InputError("cannot de-identify a DICOM object without PatientID: give the patient ID explicitly")
        if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
            raise InputError("an image says it has text burned into its pixels (BurnedInAnnotation YES): it cannot "
                             "be de-identified by its attributes alone - refusing to export it")
        out = copy.deepcopy(ds)
        table = whitelist(kind)
        self._clean(out, patient_id, table)
        for keyword in REQUIRED_EMPTY[kind]:
            if keyword not in out:
                setattr(out, keyword, "")
        if kind == "segmentation" and self.dates == "remove":
            # type 1 in a multi-frame object: a dummy (PS3.15 action D), no date of the patient's care
            out.ContentDate, out.ContentTime = DUMMY_BY_VR["DA"], DUMMY_BY_VR["TM"]
        pseudonym = self.pseudonym(patient_id)
        out.PatientName = pseudonym
        out.PatientID = pseudonym
        if kind == "segmentation" and str(out.get("ContentCreatorName", "") or ""):
            out.ContentCreatorName = self.reviewer_pseudonym(str(out.ContentCreatorName).replace("^", " "))
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = self.method_values()
        out.DeidentificationMethodCodeSequence = [self._code_item(*code) for code in self._method_codes()]
        out.LongitudinalTemporalInformationModified = "MODIFIED" if self.dates == "shift" else "REMOVED"
        meta = getattr(out, "file_meta", None)
        if meta is not None:
            for element in list(meta):
                if element.keyword not in FILE_META_KEEP:
                    del meta[element.tag]
            if "SOPInstanceUID" in out:
                meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
            if "SOPClassUID" in out:
                meta.MediaStorageSOPClassUID = out.SOPClassUID
        assert isinstance(out, Dataset)
        return out

    def _method_codes(self) -> list[tuple[str, str]]:
        codes = [("113100", "Basic Application Confidentiality Profile"), ("113105", "Clean Descriptors Option")]
        if self.dates == "shift":
            codes.append(("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
        return codes

    @staticmethod
    def _code_item(value: str, meaning: str):
        from pydicom.dataset import Dataset

        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        return item

    def _clean(self, ds: Any, patient_id: str, table: dict[str, str]) -> None:
        """Keep only whitelisted attributes of `ds` (in place), cleaned as the whitelist says; recursive."""
        offset = self.date_offset_days(patient_id)
        for element in list(ds):
            keyword = element.keyword
            action = table.get(keyword) if not element.tag.is_private else None
            if action is None:
                del ds[element.tag]
                continue
            vr = element.VR
            if action == SEQUENCE:
                if vr != "SQ":
                    del ds[element.tag]
                    continue
                for item in element.value:
                    self._clean(item, patient_id, table)
            elif action in (EMPTY, PSEUDONYM):
                element.value = [] if vr == "SQ" else ("" if vr not in NUMERIC_VRS else None)
            elif action == UID:
                self._remap_uids(element)
            elif action == DATE:
                if self.dates == "shift" and vr in ("DA", "DT"):
                    self._shift(element, offset)
                else:
                    element.value = ""
            elif action == TIME:
                if self.dates != "shift" or vr != "TM" or not _valid_time(element.value):
                    element.value = ""
            elif action == KEEP:
                if not self._keep(element):
                    del ds[element.tag]

    def _keep(self, element: Any) -> bool:
        """Check a kept value (numbers are numbers, code strings known terms); False: remove it."""
        from pydicom.uid import UID as UIDClass

        keyword, vr = element.keyword, element.VR
        if vr == "SQ":
            return False
        values = list(element.value) if element.VM > 1 else [element.value]
        if keyword in TERMS:
            kept = [v for v in values if str(v).strip().upper() in TERMS[keyword]]
            if keyword == "ImageType":
                first = [v for v in values[:1] if v in ("ORIGINAL", "DERIVED")] or ["DERIVED"]
                second = [v for v in values[1:2] if v in ("PRIMARY", "SECONDARY")] or ["SECONDARY"]
                kept = first + second + [v for v in values[2:] if str(v).strip().upper() in TERMS[keyword]]
            if not kept:
                return False
            element.value = kept if len(kept) > 1 else kept[0]
            return True
        if keyword == "Manufacturer":
            if str(element.value or "").strip().upper() not in MANUFACTURERS:
                element.value = ""
            return True
        if keyword == "SpecificCharacterSet":
            return all(str(v).strip() in CHARACTER_SETS for v in values)
        if vr in ("DS", "IS"):
            try:
                return all(v in (None, "") or math.isfinite(float(v)) for v in values)
            except (TypeError, ValueError):
                return False
        if vr == "UI":
            # a registered UID (SOP class, transfer syntax) is kept; anything else is remapped
            mapped = [v if not v or UIDClass(str(v)).name != str(v) else self.uid(str(v)) for v in values]
            element.value = mapped if element.VM > 1 else mapped[0]
            return True
        if vr in TEXT_VRS:
            return False  # free text is kept only where TERMS lists its values
        return True

    def _remap_uids(self, element: Any) -> None:
        if element.VR != "UI" or element.value in (None, ""):
            if element.VR == "SQ":
                element.value = []
            return
        values = list(element.value) if element.VM > 1 else [element.value]
        mapped = [self.uid(str(value)) for value in values]
        element.value = mapped if element.VM > 1 else mapped[0]

    def _shift(self, element: Any, offset: int) -> None:
        if element.value in (None, ""):
            return
        values = list(element.value) if element.VM > 1 else [element.value]
        shift = _shift_da if element.VR == "DA" else _shift_dt
        shifted = [shift(str(v), offset) for v in values]
        element.value = shifted if element.VM > 1 else shifted[0]

    # --- JSON records -----------------------------------------------------------------------------

    def review_record(self, record: dict[str, Any], patient_id: str) -> dict[str, Any]:
        """A review record for a de-identified export: reviewer pseudonymised, review time shifted."""
        out = dict(record)
        if out.get("reviewer"):
            out["reviewer"] = self.reviewer_pseudonym(str(out["reviewer"]))
        if "reviewed_at" in out:
            out["reviewed_at"] = self.shift_iso(out.get("reviewed_at"), patient_id)
        return out
