"""Radiomics per MRI sequence with pyradiomics (`CervicalAILib.radiomics`).

    from CervicalAILib.radiomics import extract_features, load_settings
    values = extract_features({"T2W": t2, "ADC": adc}, tumour_mask)            # full extraction
    values = extract_features(images, tumour_mask, features=bundle_features)   # model-driven

Feature names carry the sequence prefix: `CET1_wavelet-HLH_gldm_SmallDependenceEmphasis`.
Settings are pyradiomics YAML parameter files per sequence (`settings/<ROLE>.yaml`).

This package is named like pyradiomics' top-level module `radiomics`; inside it pyradiomics is
always imported absolutely (`from radiomics import featureextractor`), which Python 3 resolves
to the installed pyradiomics, never to this package.
"""

if __name__ == "radiomics":  # pragma: no cover - only when CervicalAILib/ itself is put on sys.path
    raise ImportError(
        "CervicalAILib/radiomics was imported as the top-level module 'radiomics', shadowing pyradiomics: "
        "remove the CervicalAILib folder itself from sys.path (add its parent instead)"
    )

from CervicalAILib.radiomics.extraction import MIN_ROI_VOXELS, RadiomicsResult, extract, extract_features  # noqa: E402
from CervicalAILib.radiomics.names import FeatureName, feature_name, parse_feature_name  # noqa: E402
from CervicalAILib.radiomics.settings import (  # noqa: E402
    default_settings_path,
    load_settings,
    settings_sha256,
    validate_settings,
)

__all__ = [
    "MIN_ROI_VOXELS",
    "FeatureName",
    "RadiomicsResult",
    "default_settings_path",
    "extract",
    "extract_features",
    "feature_name",
    "load_settings",
    "parse_feature_name",
    "settings_sha256",
    "validate_settings",
]
