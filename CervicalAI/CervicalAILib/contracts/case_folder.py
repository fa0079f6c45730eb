"""Which grid a case folder's sequences are on: each on its own acquisition grid, or all on the T2WI's.

A case folder comes in two kinds that look alike (T2W.nii.gz, ADC.nii.gz, ... in one folder):

    native   each sequence on the grid it was acquired on (the generator, a Slicer export, a user's
             own conversion). Features are computed here: the DWI/ADC/CE-T1WI radiomics of the
             models were fitted on the sequences' own grids, with the mask carried onto them.
    T2W      every sequence resampled onto the T2WI grid by `cervicalai study register`. Good for
             segmentation and for looking at the study; features computed on it differ
             (interpolated voxels), so a step that needs native grids refuses such a folder.

`case.json` states the kind; `study register` writes it. The reading rule (`read_manifest`):
case.json present -> what it says; absent but registration.json present (a `study register`
output made before case.json existed) -> T2W, its native source from registration.json; neither
-> native (folders of the generator and of the Slicer export need no case.json).

The sequence roles live here too: `io.case` reads and writes case folders with these names, and
feature names start with a role (`contracts.feature_names`), so they sit below both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from CervicalAILib.core.errors import InputError
from CervicalAILib.core.json_input import read_json

# Sequence roles, in the order channels are stacked for networks and exports.
ROLES = ("T2W", "ADC", "DWI", "CET1")
ROLE_TITLES = {"T2W": "T2WI", "ADC": "ADC", "DWI": "DWI", "CET1": "CE-T1WI"}  # as radiologists name them
REQUIRED_ROLE = "T2W"
CASE_FILE = "case.json"
# registration transforms beside a case or a segmentation: transforms/<ROLE>.tfm (T2WI -> that sequence)
TRANSFORMS_DIR = "transforms"
CASE_SCHEMA = "cervicalai.case/1"
# the registration record `study register` writes beside the resampled sequences (registration/onto_t2.py)
REGISTRATION_FILE = "registration.json"


class Grid(StrEnum):
    NATIVE = "native"
    T2W = "T2W"


@dataclass(frozen=True)
class CaseManifest:
    """The content of case.json."""

    grid: Grid
    native_source: str | None = None  # T2W grid: the study or case folder the sequences were resampled from
    # T2W grid: role -> voxels_sha256 of each native sequence (contracts/case_identity.py)
    native_sha256: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": CASE_SCHEMA, "grid": self.grid.value, "native_source": self.native_source,
                "native_sha256": dict(sorted(self.native_sha256.items()))}

    @classmethod
    def from_dict(cls, document: Any, path: str | Path | None = None) -> CaseManifest:
        if not isinstance(document, dict) or document.get("schema") != CASE_SCHEMA:
            raise InputError(f"is not a CervicalAI case manifest (expected \"schema\": \"{CASE_SCHEMA}\")", path)
        grids = [g.value for g in Grid]
        if document.get("grid") not in grids:
            raise InputError(f"grid {document.get('grid')!r} is not one of {', '.join(grids)}", path)
        source = document.get("native_source")
        digests = document.get("native_sha256") or {}
        if source is not None and not isinstance(source, str):
            raise InputError("native_source must be a path (text) or null", path)
        if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
            raise InputError("native_sha256 must map sequence roles to SHA-256 texts", path)
        return cls(Grid(document["grid"]), source, dict(digests))


NATIVE = CaseManifest(Grid.NATIVE)


def read_manifest(folder: str | Path) -> CaseManifest:
    """The grid of the case folder `folder` by the reading rule of the module note."""
    folder = Path(folder)
    if (folder / CASE_FILE).is_file():
        return CaseManifest.from_dict(read_json(folder / CASE_FILE, "case manifest"), folder / CASE_FILE)
    if (folder / REGISTRATION_FILE).is_file():
        record = read_json(folder / REGISTRATION_FILE, "registration record")
        source = record.get("source") if isinstance(record, dict) else None
        return CaseManifest(Grid.T2W, source if isinstance(source, str) and source else None)
    return NATIVE


def require_native_grids(folder: str | Path, what: str = "features", advice: str | None = None) -> None:
    """InputError (one line naming `folder`) when it is a case folder resampled onto the T2WI grid.

    `what`: what needs the native grids; `advice`: what to do instead ({native} is replaced by the
    native source); by default predict's: the native study with the registered folder as --transforms.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return  # a DICOM file or an image file: native by construction
    manifest = read_manifest(folder)
    if manifest.grid is Grid.NATIVE:
        return
    native = manifest.native_source or "it was made from"
    advice = (advice or "use the native study {native} with --transforms " + str(folder)).format(native=native)
    raise InputError(f"its sequences were resampled onto the T2WI grid (cervicalai study register); {what} are "
                     f"computed on each sequence's own grid: {advice}", folder)
