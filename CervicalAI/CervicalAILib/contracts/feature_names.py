"""Feature names: the one place that builds them and takes them apart.

Every feature (a column of a cohort table, a key of a readout's features, a term of a risk model)
is named `<ROLE>_<rest>`, ROLE one of the sequence roles:

    radiomics   <ROLE>_<pyradiomics name>        e.g. CET1_wavelet-HLH_gldm_SmallDependenceEmphasis
                (the engine's own: <ROLE>_<imageType>_<featureClass>_<feature>, four parts, as
                 pyradiomics' image-type, class and feature names never hold an underscore)
    deep        <ROLE>_dl-<encoder>_F<index:04d>  e.g. CET1_dl-resnet2d_F0123 (family "dl-resnet2d")

A feature's family is "radiomics" or "dl-<encoder>"; a risk model fits one score per family.
Parsing is as liberal as the cohort tables a site brings (any radiomics name after the role, any
number of index digits); building is exact. What needs pyradiomics to check (is `wavelet-HLH` an
image type pyradiomics makes, does `gldm` have that feature) stays in features.radiomic.names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from CervicalAILib.contracts.case_folder import ROLES
from CervicalAILib.core.errors import InputError

RADIOMICS_FAMILY = "radiomics"
DEEP_PREFIX = "dl-"
# An encoder's name (a bundle's outputs.encoder_name) becomes part of feature names split on "_":
# lower-case letters, digits and hyphens only.
ENCODER_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
# What a cohort table may carry as a deep family (tables made elsewhere: also upper case and dots).
_DEEP_REST = re.compile(r"(?P<family>dl-[A-Za-z0-9.\-]+)_F(?P<index>[0-9]+)")
_EXAMPLES = "e.g. T2W_original_firstorder_Mean or CET1_dl-resnet2d_F0123"


@dataclass(frozen=True)
class FeatureName:
    """A parsed feature name: `str()` gives the name back."""

    role: str  # "T2W", "ADC", "DWI" or "CET1"
    family: str  # "radiomics" or "dl-<encoder>"
    rest: str  # the pyradiomics name, or "F0123" for a deep feature
    index: int | None = None  # deep features only

    @property
    def is_deep(self) -> bool:
        return self.family != RADIOMICS_FAMILY

    def __str__(self) -> str:
        return f"{self.role}_{self.family}_{self.rest}" if self.is_deep else f"{self.role}_{self.rest}"


class RadiomicName(NamedTuple):
    """An engine radiomics name in its four parts (no pyradiomics check: see features.radiomic.names)."""

    role: str
    image_type: str  # pyradiomics image name, e.g. "wavelet-HLH", "log-sigma-2-0-mm-3D", "lbp-3D-m1"
    feature_class: str  # "firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm"
    feature: str  # e.g. "SmallDependenceEmphasis"

    @property
    def pyradiomics_name(self) -> str:
        """The name pyradiomics itself gives the feature (without the sequence prefix)."""
        return f"{self.image_type}_{self.feature_class}_{self.feature}"

    def __str__(self) -> str:
        return radiomic_name(self.role, self.pyradiomics_name)


# --------------------------------------------------------------------------- building


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"unknown sequence role {role!r} for a feature name (known: {', '.join(ROLES)})")


def radiomic_name(role: str, pyradiomics_name: str) -> str:
    """("CET1", "original_firstorder_Mean") -> "CET1_original_firstorder_Mean"."""
    _check_role(role)
    if not pyradiomics_name or pyradiomics_name.startswith(DEEP_PREFIX):
        raise InputError(f"{pyradiomics_name!r} is not a pyradiomics feature name")
    return f"{role}_{pyradiomics_name}"


def deep_family(encoder_name: str) -> str:
    """The family of an encoder's features: "resnet2d" -> "dl-resnet2d"."""
    if not isinstance(encoder_name, str) or not ENCODER_NAME.fullmatch(encoder_name):
        raise InputError(f"encoder name {encoder_name!r} must be lower-case letters, digits and hyphens")
    return f"{DEEP_PREFIX}{encoder_name}"


def encoder_of_family(family: str) -> str:
    """The encoder name of a deep family: "dl-resnet2d" -> "resnet2d"."""
    if not family.startswith(DEEP_PREFIX) or len(family) == len(DEEP_PREFIX):
        raise InputError(f"{family!r} is not a deep feature family (dl-<encoder>)")
    return family[len(DEEP_PREFIX):]


def deep_name(role: str, encoder_name: str, index: int) -> str:
    """("CET1", "resnet2d", 123) -> "CET1_dl-resnet2d_F0123"."""
    _check_role(role)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise InputError(f"deep feature index {index!r} must be an integer >= 0")
    return f"{role}_{deep_family(encoder_name)}_F{index:04d}"


def deep_name_pattern(encoder_name: str) -> str:
    """How a bundle documents its feature names: "{ROLE}_dl-resnet2d_F{index:04d}"."""
    return f"{{ROLE}}_{deep_family(encoder_name)}_F{{index:04d}}"


# --------------------------------------------------------------------------- parsing


def _split_role(name: str) -> tuple[str, str] | None:
    role, sep, rest = name.partition("_")
    return (role, rest) if sep and role in ROLES else None


def parse_feature_name(name: str) -> FeatureName:
    """The parts of a feature name; InputError for anything that is not one."""
    if not isinstance(name, str):
        raise InputError(f"feature name must be text, got {name!r}")
    split = _split_role(name)
    if split is None:
        raise InputError(f"{name!r} is not a feature name: it must start with a sequence role "
                         f"({', '.join(ROLES)}) and '_' ({_EXAMPLES})")
    role, rest = split
    if rest.startswith(DEEP_PREFIX):
        match = _DEEP_REST.fullmatch(rest)
        if match is None:
            raise InputError(f"{name!r} is not a deep feature name: expected <ROLE>_dl-<encoder>_F<index> "
                             "(e.g. CET1_dl-resnet2d_F0123)")
        index = match.group("index")
        return FeatureName(role, match.group("family"), f"F{index}", int(index))
    if not rest:
        raise InputError(f"{name!r} is not a feature name: nothing after the sequence role ({_EXAMPLES})")
    return FeatureName(role, RADIOMICS_FAMILY, rest)


def is_feature_name(name: str) -> bool:
    """Whether a table column names a feature; InputError for a column that starts like one (a sequence
    role and '_') but is malformed, so that it is never taken silently for a clinical column."""
    if not isinstance(name, str) or _split_role(name) is None:
        return False
    parse_feature_name(name)
    return True


def role_of(name: str) -> str:
    """"CET1_dl-resnet2d_F0123" -> "CET1"."""
    return parse_feature_name(name).role


def family_of(name: str) -> str:
    """"CET1_dl-resnet2d_F0123" -> "dl-resnet2d"; "T2W_original_firstorder_Mean" -> "radiomics"."""
    return parse_feature_name(name).family


def is_deep(name: str) -> bool:
    return parse_feature_name(name).is_deep


def split_radiomic_name(name: str) -> RadiomicName:
    """An engine radiomics name in its four parts:
    "CET1_wavelet-HLH_gldm_SmallDependenceEmphasis" -> ("CET1", "wavelet-HLH", "gldm", "SmallDependenceEmphasis")."""
    if not isinstance(name, str):
        raise InputError(f"radiomics feature name must be a string, got {name!r}")
    parts = name.split("_")
    if len(parts) != 4 or not all(parts):
        raise InputError(
            f"radiomics feature name {name!r} is not of the form <ROLE>_<imageType>_<featureClass>_<feature>, "
            f"e.g. 'CET1_wavelet-HLH_gldm_SmallDependenceEmphasis'"
        )
    role, image_type, feature_class, feature = parts
    if role not in ROLES:
        raise InputError(
            f"radiomics feature {name!r}: unknown sequence prefix {role!r} (known: {', '.join(ROLES)})"
        )
    if image_type.startswith(DEEP_PREFIX):
        raise InputError(f"radiomics feature {name!r}: {image_type!r} names a deep feature family, not an image type")
    return RadiomicName(role, image_type, feature_class, feature)
