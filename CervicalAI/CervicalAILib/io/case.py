"""Case folders: the contract between the generator, the CLI, the modules and the exporters.

    <case>/T2W.nii.gz DWI.nii.gz ADC.nii.gz CET1.nii.gz   (any may be missing except T2W)
    <case>/clinical.json                                   (optional)
    <case>/labels/tumor.nii.gz ...                         (optional; other labels too)

Images are kept on their own acquisition grids; `registration` brings them onto the T2WI grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from CervicalAILib.contracts.case_folder import (  # noqa: F401  (io.case.ROLES is where readers look)
    REQUIRED_ROLE,
    ROLES,
    TRANSFORMS_DIR,
)
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.images import IMAGE_SUFFIXES, read_image, write_image

CLINICAL_FILE = "clinical.json"
LABELS_DIR = "labels"


def find_role_file(folder: Path, stem: str) -> Path | None:
    """`folder/stem.<any supported image suffix>` if present (case-sensitive stem); InputError when
    several files claim the role (e.g. T2W.nii.gz and T2W.nrrd): which one is meant cannot be guessed."""
    found = [folder / f"{stem}{suffix}" for suffix in IMAGE_SUFFIXES
             if (folder / f"{stem}{suffix}").is_file() or (folder / f"{stem}{suffix}").is_symlink()]
    if len(found) > 1:
        raise InputError(f"holds {len(found)} files for the {stem} role ({', '.join(p.name for p in found)}): keep "
                         "one", folder)
    return found[0] if found else None


def is_case_folder(path: str | Path) -> bool:
    path = Path(path)
    if not path.is_dir():
        return False
    try:
        return find_role_file(path, REQUIRED_ROLE) is not None
    except InputError:
        return True  # a case folder with two T2W files: loading it says so


@dataclass
class Case:
    """One patient's case folder; images are read lazily and cached."""

    path: Path
    image_paths: dict[str, Path]
    label_paths: dict[str, Path]
    clinical: dict[str, Any] | None = None
    _cache: dict[str, sitk.Image] = field(default_factory=dict, repr=False)

    @property
    def case_id(self) -> str:
        return self.path.name

    @property
    def roles(self) -> list[str]:
        return [role for role in ROLES if role in self.image_paths]

    def image(self, role: str) -> sitk.Image:
        if role not in self.image_paths:
            raise InputError(f"case has no {role} image (has: {', '.join(self.roles)})", self.path)
        if role not in self._cache:
            self._cache[role] = read_image(self.image_paths[role])
        return self._cache[role]

    def images(self) -> dict[str, sitk.Image]:
        return {role: self.image(role) for role in self.roles}

    def label(self, name: str = "tumor") -> sitk.Image:
        if name not in self.label_paths:
            raise InputError(f"case has no label {name!r} in {LABELS_DIR}/", self.path)
        key = f"label:{name}"
        if key not in self._cache:
            self._cache[key] = read_image(self.label_paths[name])
        return self._cache[key]


def load_case(path: str | Path) -> Case:
    """Open a case folder; InputError if it lacks a T2WI or its clinical.json is unreadable."""
    path = Path(path)
    if not path.is_dir():
        raise InputError("case folder not found", path)
    image_paths = {role: p for role in ROLES if (p := find_role_file(path, role)) is not None}
    if REQUIRED_ROLE not in image_paths:
        raise InputError(
            f"no {REQUIRED_ROLE} image (expected {REQUIRED_ROLE}.nii.gz; a case needs at least the T2WI)", path
        )
    label_paths: dict[str, Path] = {}
    labels_dir = path / LABELS_DIR
    if labels_dir.is_dir():
        for file in sorted(labels_dir.iterdir()):
            for suffix in IMAGE_SUFFIXES:
                if file.name.endswith(suffix):
                    label_paths[file.name[: -len(suffix)]] = file
                    break
    clinical = None
    clinical_path = path / CLINICAL_FILE
    if clinical_path.is_file():
        try:
            clinical = json.loads(clinical_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"clinical.json is not valid JSON ({exc})", clinical_path) from exc
    return Case(path=path, image_paths=image_paths, label_paths=label_paths, clinical=clinical)


def read_transforms(case_folder: str | Path) -> dict[str, sitk.Transform]:
    """The registration transforms stored in a case (or segmentation) folder: `transforms/<ROLE>.tfm`,
    T2WI -> sequence, written by `cervicalai study register` and `segment` (reading them is IO; which
    transform to use is registration/rule.py's)."""
    folder = Path(case_folder) / TRANSFORMS_DIR
    transforms = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.tfm")):
            try:
                transforms[path.stem] = sitk.ReadTransform(str(path))
            except RuntimeError as exc:
                reason = str(exc).strip().splitlines()[-1]
                if "basic_string" in reason or "__pos" in reason or len(reason) > 160:
                    reason = "not a valid ITK transform file"
                raise InputError(f"cannot read registration transform ({reason})", path) from exc
    return transforms


def write_case(
    out_dir: str | Path,
    images: dict[str, sitk.Image],
    labels: dict[str, sitk.Image] | None = None,
    clinical: dict[str, Any] | None = None,
    extra_files: dict[str, bytes | str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a complete case folder atomically (it appears only once every file is written)."""
    unknown = set(images) - set(ROLES)
    if unknown:
        raise InputError(f"unknown sequence role(s) {sorted(unknown)}; known: {', '.join(ROLES)}", out_dir)
    if REQUIRED_ROLE not in images:
        raise InputError(f"a case needs a {REQUIRED_ROLE} image", out_dir)
    with atomic.atomic_directory(out_dir, overwrite=overwrite) as tmp:
        for role, image in images.items():
            write_image(image, tmp / f"{role}.nii.gz")
        if labels:
            (tmp / LABELS_DIR).mkdir()
            for name, image in labels.items():
                write_image(image, tmp / LABELS_DIR / f"{name}.nii.gz")
        if clinical is not None:
            (tmp / CLINICAL_FILE).write_text(atomic.to_json(clinical), encoding="utf-8")
        for name, content in (extra_files or {}).items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                target.write_text(content, encoding="utf-8")
            else:
                target.write_bytes(content)
    return Path(out_dir)
