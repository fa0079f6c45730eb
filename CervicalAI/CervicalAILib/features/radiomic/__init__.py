"""Radiomics per MRI sequence with pyradiomics (`CervicalAILib.features.radiomic`).

    from CervicalAILib.features.radiomic import extract_features, load_settings
    values = extract_features({"T2W": t2, "ADC": adc}, tumour_mask)            # full extraction
    values = extract_features(images, tumour_mask, features=bundle_features)   # model-driven

Feature names carry the sequence prefix: `CET1_wavelet-HLH_gldm_SmallDependenceEmphasis`.
Settings are pyradiomics YAML parameter files per sequence (`settings/<ROLE>.yaml`).

"""

from CervicalAILib.features.radiomic.extraction import (
    MIN_ROI_VOXELS,
    RadiomicsResult,
    extract,
    extract_features,
)
from CervicalAILib.features.radiomic.names import parse_feature_name
from CervicalAILib.features.radiomic.settings import (
    default_settings_path,
    load_settings,
    settings_sha256,
    validate_settings,
)

__all__ = [
    "MIN_ROI_VOXELS",
    "RadiomicsResult",
    "default_settings_path",
    "extract",
    "extract_features",
    "load_settings",
    "parse_feature_name",
    "settings_sha256",
    "validate_settings",
]
