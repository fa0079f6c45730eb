"""De-identification for export to annotation partners (DICOM PS3.15, keyed pseudonyms).

DICOM: the Basic Application Level Confidentiality Profile (PS3.15 Annex E) applied over an
explicit attribute table (`ps3_15_basic_profile.json`, Table E.1-1: one action code per
attribute), recursively into sequences:

    D  replace with a dummy value of the same VR        Z  keep the attribute, empty value
    X  remove                                           K  keep
    U  replace the UID with a keyed one (same in, same out)
    C  clean: dates shifted (see below)

Where the table gives a choice (X/Z, X/D, Z/D, X/Z/D) the most conservative choice that keeps
an object valid is taken: D when offered (a required attribute keeps a harmless value), else Z;
"X/Z/U*" sequences (Referenced / Source Image) are kept with their UIDs remapped, so that a
SEG still references its de-identified images. On top of the table:

- every private attribute, every curve (50xx) and overlay (60xx) group is removed;
- every other UID that is not a registered DICOM UID (SOP classes, transfer syntaxes, ...) is
  remapped the same way, every other person name (PN) is emptied;
- dates: `dates="shift"` moves every DA/DT value by a per-patient keyed offset (whole days into
  the past, the same for every export of that patient: intervals between studies survive; the
  Retain Longitudinal Temporal Information with Modified Dates Option), `dates="remove"`
  applies the table's action and empties every other date;
- PatientName and PatientID become the patient's pseudonym; PatientIdentityRemoved = YES,
  DeidentificationMethod and its code sequence say what was done.

Pseudonyms, UIDs and date offsets are HMAC-SHA256 of the original value under a secret key, so
the same patient maps to the same pseudonym (and the same UID to the same new UID) in every
export made with the same key, and nobody without the key can reverse or recompute them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError

KEY_ENV = "CERVICALAI_DEID_KEY"
MIN_KEY_BYTES = 16
DATE_MODES = ("shift", "remove")
# Offsets are 1 .. MAX_SHIFT_DAYS days into the past.
MAX_SHIFT_DAYS = 3650
PSEUDONYM_PREFIX = "CAI-"
PROFILE_FILE = Path(__file__).with_name("ps3_15_basic_profile.json")

# UIDs under these keywords name standard things (SOP classes, syntaxes, coding schemes): kept.
KEEP_UID_KEYWORDS = {
    "SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID",
    "ImplementationClassUID", "ReferencedSOPClassUIDInFile", "ReferencedTransferSyntaxUIDInFile",
    "CodingSchemeUID", "ContextGroupExtensionCreatorUID", "MappingResourceUID", "RelatedGeneralSOPClassUID",
    "OriginalSpecializedSOPClassUID", "SOPClassesInStudy", "TemplateExtensionCreatorUID",
}
# File-meta attributes that may name the sending site.
REMOVE_FILE_META = ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle",
                    "ReceivingApplicationEntityTitle", "PrivateInformationCreatorUID", "PrivateInformation")

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
                "keyed pseudonyms and UIDs (HMAC-SHA256)",
                "dates shifted per patient" if self.dates == "shift" else "dates removed",
                "private, curve and overlay data removed"]

    def method_text(self) -> str:
        return "; ".join(self.method_values())

    # --- DICOM ----------------------------------------------------------------------------------

    def dataset(self, ds: Any, patient_id: str | None = None) -> Any:
        """A de-identified copy of a pydicom Dataset (the original is not changed).

        `patient_id` keys the pseudonym and the date offset (default: the data set's PatientID).
        """
        import copy

        from pydicom.dataset import Dataset

        patient_id = str(patient_id if patient_id is not None else ds.get("PatientID", "") or "").strip()
        if not patient_id:
            raise InputError("cannot de-identify a DICOM object without PatientID: give the patient ID explicitly")
        out = copy.deepcopy(ds)
        self._clean(out, patient_id)
        pseudonym = self.pseudonym(patient_id)
        out.PatientName = pseudonym
        out.PatientID = pseudonym
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = self.method_values()
        out.DeidentificationMethodCodeSequence = [self._code_item(*code) for code in self._method_codes()]
        out.LongitudinalTemporalInformationModified = "MODIFIED" if self.dates == "shift" else "REMOVED"
        meta = getattr(out, "file_meta", None)
        if meta is not None:
            for keyword in REMOVE_FILE_META:
                if keyword in meta:
                    delattr(meta, keyword)
            if "SOPInstanceUID" in out:
                meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
        assert isinstance(out, Dataset)
        return out

    def _method_codes(self) -> list[tuple[str, str]]:
        codes = [("113100", "Basic Application Confidentiality Profile")]
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

    def _clean(self, ds: Any, patient_id: str) -> None:
        """Apply the profile to `ds` in place, recursing into sequence items."""
        from pydicom.datadict import keyword_for_tag
        from pydicom.uid import UID

        table = profile_table()
        offset = self.date_offset_days(patient_id)
        for element in list(ds):
            tag = int(element.tag)
            group = tag >> 16
            if element.tag.is_private or 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
                del ds[element.tag]
                continue
            vr = element.VR
            keyword = keyword_for_tag(tag)
            if tag in table:
                code, _name, date_option = table[tag]
                action = resolve_action(code)
                if date_option and self.dates == "shift" and vr in ("DA", "DT", "TM"):
                    action = "C"
            else:
                action = "K"
            if action == "X":
                del ds[element.tag]
            elif action == "Z":
                element.value = [] if vr == "SQ" else ("" if isinstance(DUMMY_BY_VR.get(vr, ""), str) else None)
            elif action == "D":
                self._dummy(element)
            elif action == "U":
                self._remap_uids(element)
            elif action == "C":
                self._shift(element, offset)
            elif vr == "SQ":  # K or U*: keep the sequence, clean its items
                for item in element.value:
                    self._clean(item, patient_id)
            elif vr == "UI":
                if keyword not in KEEP_UID_KEYWORDS:
                    self._remap_uids(element, keep_registered=True, uid_class=UID)
            elif vr in ("DA", "DT"):
                if self.dates == "shift":
                    self._shift(element, offset)
                else:
                    element.value = ""
            elif vr == "PN":
                element.value = ""

    def _dummy(self, element: Any) -> None:
        vr = element.VR
        if vr == "SQ":
            element.value = []
        elif vr == "UI":
            self._remap_uids(element)
        elif element.VM == 0 or element.value in (None, ""):
            return  # an empty value stays empty: nothing identifying in it
        else:
            element.value = DUMMY_BY_VR.get(vr, DUMMY_TEXT)

    def _remap_uids(self, element: Any, keep_registered: bool = False, uid_class: Any = None) -> None:
        if element.VR != "UI" or element.value in (None, ""):
            if element.VR == "SQ":
                element.value = []
            return
        values = list(element.value) if element.VM > 1 else [element.value]
        mapped = []
        for value in values:
            text = str(value)
            if keep_registered and uid_class is not None and uid_class(text).name != text:
                mapped.append(text)  # a registered DICOM UID (e.g. a coding scheme): not identifying
            else:
                mapped.append(self.uid(text))
        element.value = mapped if element.VM > 1 else mapped[0]

    def _shift(self, element: Any, offset: int) -> None:
        if element.value in (None, ""):
            return
        if element.VR == "TM":
            return  # whole-day shifts keep the time of day
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
