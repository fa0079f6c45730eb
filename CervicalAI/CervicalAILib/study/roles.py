"""Which series plays each role: the user's overrides first, then the best candidate of each kind.

- T2W: axial, then oblique-axial, before sagittal/coronal; original before derived images;
  without fat suppression before with.
- DWI: acquired before calculated (computed b-value) series, axial first, highest b-value; its
  image is the highest acquired b-value volume, all b-values are listed.
- ADC: axial first, on the chosen DWI's grid first.
- CET1: a T1-weighted series with contrast evidence (ContrastBolusAgent, or "+c", "post",
  "gad", ... in its description); a T1 without such evidence is reported, not used.
"""

from __future__ import annotations

import numpy as np

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import ROLES
from CervicalAILib.study.recognition import OTHER, ROLE_NAMES, T1_WITHOUT_CONTRAST
from CervicalAILib.study.series import Series, Study, describe_series, normalise_role


def _orientation_rank(orientation: str) -> int:
    return {"axial": 0, "oblique-axial": 1}.get(orientation, 2)


def _rank(series: Series, role: str, chosen: dict[str, Series]) -> tuple:
    orientation = _orientation_rank(series.orientation)
    number = series.number if series.number is not None else 10**6
    if role == "T2W":
        return (orientation, series.derived, series.fat_suppressed, number)
    if role == "DWI":
        return (series.is_calculated, orientation, -(series.b_value or 0.0), number)
    if role == "ADC":
        dwi = chosen.get("DWI")
        same_grid = dwi is not None and dwi.size == series.size and dwi.direction is not None and series.direction is not None and np.allclose(dwi.direction, series.direction, atol=1e-3)
        return (orientation, not same_grid, number)
    if role == "CET1":
        return (orientation, series.derived, -number)  # later series: later (more complete) enhancement
    return (number,)


def assign_roles(study: Study, role_overrides: dict[str, str] | None = None) -> None:
    """Give each role to its best candidate; overrides first, then automatic for the rest."""
    pinned: dict[str, str] = {}
    for name, role in (role_overrides or {}).items():
        series = study.find_series(name)
        role = normalise_role(role)
        if role != OTHER:
            if role in pinned.values():
                other = next(k for k, r in pinned.items() if r == role)
                raise InputError(f"role {role} given to two series ({other} and {series.key}); give it to one")
            if series.modality not in ("", "MR"):
                raise InputError(f"{describe_series(series)} is {series.modality}, not MR: it cannot be used as {role}", series.path)
            if not series.usable:
                raise InputError(
                    f"{describe_series(series)} cannot be used as {role}: {'; '.join(series.problems) or 'not an image volume'}",
                    series.path,
                )
        pinned[series.key] = role
    for series in study.series:
        if series.key in pinned:
            series.role, series.role_source = pinned[series.key], "override"
        elif study.source != "case" or series.role in pinned.values():
            # automatic roles are decided afresh; a case-folder role yields to an override
            series.role, series.role_source = OTHER, ""

    chosen: dict[str, Series] = {s.role: s for s in study.series if s.role in ROLES}
    for role in ("T2W", "DWI", "ADC", "CET1"):  # DWI before ADC: ADC prefers the DWI grid
        if role in chosen:
            continue
        candidates = [s for s in study.series if s.kind == role and s.key not in pinned]
        usable = [s for s in candidates if s.usable]
        for series in candidates:
            if not series.usable:
                study.problems.append(
                    f"{describe_series(series)} looks like {role} but cannot be used: {'; '.join(series.problems)}"
                )
        if not usable:
            continue
        usable.sort(key=lambda s: _rank(s, role, chosen))
        best = usable[0]
        best.role, best.role_source = role, "auto"
        chosen[role] = best
        if len(usable) > 1:
            others = ", ".join(f"{s.key} ({s.orientation}{', calculated' if s.is_calculated else ''})" for s in usable[1:])
            study.notes.append(
                f"{role}: chose series {best.key} ({best.orientation}{', calculated' if best.is_calculated else ''}) "
                f"over {others}; change with --role SERIES={role}"
            )
        if role == "DWI" and best.is_calculated:
            study.notes.append(f"DWI: only a calculated b-value series was found ({describe_series(best)})")

    for series in study.series:
        if series.kind == T1_WITHOUT_CONTRAST and series.role == OTHER:
            study.notes.append(
                f"{describe_series(series)} looks like a T1-weighted series without contrast evidence; "
                f"if it is post-contrast, use --role {series.key}=CET1"
            )
    for role in ROLES:
        if role not in chosen:
            study.problems.append(f"no {ROLE_NAMES[role]} series found (role {role} is empty)")
