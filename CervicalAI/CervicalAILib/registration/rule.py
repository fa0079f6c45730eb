"""Which transform (T2WI point -> sequence point) carries each sequence: the one rule.

Segmentation, the readout, cohort extraction and segmentation training all need, per sequence, the
transform between the T2WI and that sequence. They decide it here, by one rule, per requested role R
other than the T2WI:

1. R's image is on the T2WI grid -> no transform (identity): `SAME_GRID`;
2. a stored transform for R (`transforms/<R>.tfm` of the case, or given with `--transforms`) -> it:
   `STORED`;
3. R is the DWI and the ADC is on the DWI's grid (one acquisition; the ADC registers reliably, a
   high-b image alone does not) -> the ADC's transform, stored or registered now even when the ADC
   itself was not requested: `FROM_ADC`;
4. otherwise, when registration is allowed, a rigid registration now (`register_to_t2`: Mattes MI,
   fixed seed, overlap checked): `REGISTERED`; when it is not (`extract --no-register`), none: the
   scanner geometry alone carries the mask (`registration.masks.sequence_masks` warns): `SCANNER`.

Callers say which images they have (`images`: the T2WI and whatever sequences are at hand; the ADC
is used for the DWI's transform when present) and which roles they need; they never compare grids
themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import SimpleITK as sitk

from CervicalAILib.contracts.case_folder import REQUIRED_ROLE
from CervicalAILib.core.progress import ProgressCallback
from CervicalAILib.io.geometry import same_grid
from CervicalAILib.registration.onto_t2 import register_to_t2
from CervicalAILib.registration.rigid import RegistrationResult


class TransformSource(StrEnum):
    SAME_GRID = "same grid"
    STORED = "stored"
    FROM_ADC = "ADC's transform"
    REGISTERED = "registered now"
    SCANNER = "scanner geometry"


@dataclass
class Transforms:
    """The outcome of the rule for the requested roles (the T2WI itself is never listed).

    by_role: the transform of every role that has one (STORED, FROM_ADC, REGISTERED); a role on the
    T2WI grid (SAME_GRID) or carried by the scanner geometry (SCANNER) has none.
    registered: the roles whose transform was computed by this call (REGISTERED, and FROM_ADC when
    the ADC was registered now); results: their registration results.
    """

    by_role: dict[str, sitk.Transform] = field(default_factory=dict)
    source: dict[str, TransformSource] = field(default_factory=dict)
    registered: list[str] = field(default_factory=list)
    results: dict[str, RegistrationResult] = field(default_factory=dict)


def stored_in_use(images: Mapping[str, sitk.Image], stored: Mapping[str, sitk.Transform]) -> list[str]:
    """The roles whose stored transform the rule would use (rule 2): the sequences these transforms
    move, whose images must be the ones the transforms were computed for (a provenance check)."""
    t2 = images[REQUIRED_ROLE]
    return [role for role in stored if role in images and role != REQUIRED_ROLE and not same_grid(images[role], t2)]


def resolve_transforms(
    images: Mapping[str, sitk.Image],
    roles: Sequence[str],
    stored: Mapping[str, sitk.Transform] | None = None,
    *,
    register: bool = True,
    progress: ProgressCallback | None = None,
) -> Transforms:
    """The transform of each role of `roles` by the rule of the module note.

    images: the T2WI (required) and the sequences at hand, each on its own grid; `roles` not among
    them are skipped. stored: role -> transform found beside the case or given by the user.
    """
    stored = dict(stored or {})
    t2 = images[REQUIRED_ROLE]
    shares_adc = "ADC" in images and "DWI" in images and same_grid(images["ADC"], images["DWI"])
    result = Transforms()
    need: list[str] = []
    for role in roles:
        if role == REQUIRED_ROLE or role not in images or role in result.source:
            continue
        if same_grid(images[role], t2):
            result.source[role] = TransformSource.SAME_GRID
        elif role in stored:
            result.source[role] = TransformSource.STORED
            result.by_role[role] = stored[role]
        elif role == "DWI" and shares_adc and "ADC" in stored:
            result.source[role] = TransformSource.FROM_ADC
            result.by_role[role] = stored["ADC"]
        elif register:
            result.source[role] = TransformSource.FROM_ADC if role == "DWI" and shares_adc else TransformSource.REGISTERED
            need.append(role)
        else:
            result.source[role] = TransformSource.SCANNER
    if need:
        moving = {role: images[role] for role in need}
        if "DWI" in moving and shares_adc:
            moving["ADC"] = images["ADC"]  # registered with it, the DWI takes its transform (register_to_t2)
        _, results = register_to_t2({REQUIRED_ROLE: t2, **moving}, progress)
        for role in need:
            result.by_role[role] = results[role].transform
            result.results[role] = results[role]
        result.registered = need
    return result
