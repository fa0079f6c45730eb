"""Radiomics feature names: `<ROLE>_<imageType>_<featureClass>_<feature>`.

The part after the sequence prefix is pyradiomics' own name, e.g.
`CET1_wavelet-HLH_gldm_SmallDependenceEmphasis` or `T2W_original_shape_Maximum3DDiameter`.
pyradiomics image-type names never contain an underscore and neither do its class and feature
names, so a name splits into exactly four parts.

Besides parsing, this module knows which pyradiomics image *type* (the key of the `imageType`
section of a parameter file, e.g. `Wavelet`) produces which image *name* (e.g. `wavelet-HLH`),
so that a model-driven extraction can enable only what a model needs.
"""

from __future__ import annotations

import itertools
import re

from CervicalAILib.contracts.feature_names import RadiomicName, split_radiomic_name
from CervicalAILib.core.errors import InputError

SHAPE_CLASSES = ("shape", "shape2D")


def _feature_classes() -> dict:
    from radiomics import getFeatureClasses  # pyradiomics, imported absolutely (never this package)

    return getFeatureClasses()


def parse_feature_name(name: str) -> RadiomicName:
    """Split a prefixed radiomics feature name into (role, image_type, feature_class, feature) and check
    that pyradiomics makes it.

    `parse_feature_name("CET1_wavelet-HLH_gldm_SmallDependenceEmphasis")`
    -> `("CET1", "wavelet-HLH", "gldm", "SmallDependenceEmphasis")`.

    Raises InputError for a name not of that form or with an unknown sequence prefix (the grammar:
    contracts.feature_names.split_radiomic_name), an image-type name pyradiomics never produces, an
    unknown feature class or a feature that class does not have. Whether the image type is produced
    by a particular settings file is checked at extraction time.
    """
    parsed = split_radiomic_name(name)
    role, image_type, feature_class, feature = parsed.role, parsed.image_type, parsed.feature_class, parsed.feature
    if image_type_key(image_type) is None:
        if image_type_key(image_type.replace(".", "-")) is not None:
            suggestion = "_".join([role, image_type.replace(".", "-"), feature_class, feature])
            raise InputError(
                f"radiomics feature {name!r}: did you mean {suggestion!r}? "
                "(pyradiomics writes image types with '-'; R turns them into '.')"
            )
        raise InputError(
            f"radiomics feature {name!r}: {image_type!r} is not an image type pyradiomics produces "
            "(e.g. original, wavelet-HLH, log-sigma-2-0-mm-3D, lbp-3D-m1, lbp-3D-k, gradient)"
        )
    classes = _feature_classes()
    if feature_class not in classes:
        known = ", ".join(sorted(classes))
        raise InputError(
            f"radiomics feature {name!r}: unknown feature class {feature_class!r} (known: {known})"
        )
    if feature not in classes[feature_class].getFeatureNames():
        raise InputError(
            f"radiomics feature {name!r}: pyradiomics' {feature_class} class has no feature {feature!r}"
        )
    if feature_class in SHAPE_CLASSES and image_type != "original":
        raise InputError(
            f"radiomics feature {name!r}: shape features exist only for the original image, not {image_type!r}"
        )
    return parsed


_SIMPLE_TYPES = {
    "original": "Original",
    "gradient": "Gradient",
    "square": "Square",
    "squareroot": "SquareRoot",
    "logarithm": "Logarithm",
    "exponential": "Exponential",
    "lbp-2D": "LBP2D",
}
_WAVELET = re.compile(r"^wavelet(\d*)-[LH]{2,3}$")
_LOG = re.compile(r"^log-sigma-[0-9][0-9e+-]*-mm-3D$")
_LBP3D = re.compile(r"^lbp-3D-(m\d+|k)$")


def image_type_key(image_name: str) -> str | None:
    """pyradiomics image-type key (`imageType` section) that produces an image name, or None if none does."""
    if image_name in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[image_name]
    if _WAVELET.match(image_name):
        return "Wavelet"
    if _LOG.match(image_name):
        return "LoG"
    if _LBP3D.match(image_name):
        return "LBP3D"
    return None


def log_image_name(sigma: float) -> str:
    """pyradiomics' name for the LoG image of one sigma (its own formatting: 2.0 -> 'log-sigma-2-0-mm-3D')."""
    return f"log-sigma-{str(sigma).replace('.', '-')}-mm-3D"


def image_names(image_type: str, args: dict) -> list[str]:
    """Names of the images pyradiomics yields for an enabled image type with the given settings.

    `args` are the effective settings for the type (global settings updated with its custom
    settings), exactly what pyradiomics passes to `get<Type>Image`. The order is pyradiomics'.
    """
    if image_type == "Wavelet":
        n_axes = 2 if args.get("force2D", False) else 3
        level = int(args.get("level", 1))
        names = []
        for idx in range(1, level + 1):
            prefix = "wavelet-" if idx == 1 else f"wavelet{idx}-"
            for combo in itertools.product("LH", repeat=n_axes):
                band = "".join(combo)
                if band != "L" * n_axes:
                    names.append(prefix + band)
        names.append(("wavelet-" if level == 1 else f"wavelet{level}-") + "L" * n_axes)
        return names
    if image_type == "LoG":
        return [log_image_name(sigma) for sigma in args.get("sigma", [])]
    if image_type == "LBP3D":
        return [f"lbp-3D-m{level}" for level in range(1, int(args.get("lbp3DLevels", 2)) + 1)] + ["lbp-3D-k"]
    for name, key in _SIMPLE_TYPES.items():
        if key == image_type:
            return [name]
    raise InputError(f"pyradiomics image type {image_type!r} is not supported")
