"""Synthetic feature tables with known signal, for tests, benchmarks and demonstrations of `fit`.

Not images: a table as the cohort extraction would write it, built so that the right answer of
seed 004's chain is known. Two latent tumour traits z1, z2 drive the outcome (and c_LNM); a few
radiomics and deep features carry them (the *signal* features), others are correlated duplicates
of the signal features (|rho| > 0.9, which the Spearman step must remove) or pure noise. Each
centre multiplies and shifts every feature (scanner effects that ComBat must remove); centre
effects do not depend on the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from CervicalAILib.contracts.case_folder import ROLES
from CervicalAILib.contracts.feature_names import deep_name, encoder_of_family, radiomic_name

SIGNAL_RADIOMICS = {
    "CET1_wavelet-HLH_gldm_SmallDependenceEmphasis": ("z1", 1.0),
    "ADC_original_firstorder_Median": ("z2", -1.0),
}
DUPLICATE_RADIOMICS = {
    "CET1_wavelet-HLH_glrlm_ShortRunEmphasis": "CET1_wavelet-HLH_gldm_SmallDependenceEmphasis",
    "ADC_original_firstorder_Mean": "ADC_original_firstorder_Median",
}
_NOISE_STEMS = [
    "original_firstorder_Skewness", "original_glcm_Idmn", "original_glszm_ZoneEntropy", "original_shape_Sphericity",
    "log-sigma-2-0-mm-3D_firstorder_Energy", "log-sigma-3-0-mm-3D_glcm_Contrast", "wavelet-LLH_ngtdm_Busyness",
    "wavelet-HHL_gldm_DependenceVariance", "lbp-3D-m1_firstorder_Entropy", "lbp-3D-k_glrlm_RunVariance",
    "gradient_glcm_JointEnergy", "wavelet-LHL_firstorder_Kurtosis", "log-sigma-1-0-mm-3D_glszm_SizeZoneNonUniformity",
    "wavelet-HLL_glcm_ClusterShade", "gradient_firstorder_Range",
]


@dataclass
class SimulatedTable:
    frame: Any  # pandas.DataFrame
    signal: dict[str, list[str]] = field(default_factory=dict)  # family -> signal feature names
    duplicates: dict[str, list[str]] = field(default_factory=dict)  # family -> duplicate names
    noise: dict[str, list[str]] = field(default_factory=dict)
    batch: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)  # centre -> feature -> (scale, shift)


def simulate_feature_table(
    n_cases: int = 400,
    seed: int = 0,
    centers: tuple[str, ...] = ("A", "B", "C"),
    center_weights: tuple[float, ...] | None = None,
    n_noise_radiomics: int = 40,
    deep_families: dict[str, float] | None = None,
    deep_width: int = 16,
    signal_strength: float = 1.2,
    batch_effects: bool = True,
    train_center: str | None = None,
) -> SimulatedTable:
    """A feature table with known signal. `deep_families` maps family -> signal strength (0 = none).

    The `split` column follows seed 004's design: cases of `train_center` (default: the first
    centre) are split 7:3 into "train" / "internal", the other centres are "external".
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    deep_families = {"dl-resnet2d": 1.0, "dl-resnet3d": 0.4} if deep_families is None else deep_families
    weights = np.asarray(center_weights or [1.0] * len(centers), dtype=float)
    center = rng.choice(np.asarray(centers, dtype=object), size=n_cases, p=weights / weights.sum())
    z1, z2 = rng.normal(size=n_cases), rng.normal(size=n_cases)
    lnm_logit = -1.1 + signal_strength * (0.9 * z1 + 0.8 * z2)
    lnm = (rng.uniform(size=n_cases) < 1.0 / (1.0 + np.exp(-lnm_logit))).astype(int)
    c_lnm = (rng.uniform(size=n_cases) < np.where(lnm == 1, 0.30, 0.03)).astype(int)
    short_axis = np.where(c_lnm == 1, rng.uniform(10, 20, n_cases), rng.uniform(3, 9.9, n_cases)).round(1)
    size_class = np.clip(np.round(1.5 + 0.8 * z1 + rng.normal(scale=0.8, size=n_cases)), 0, 4).astype(int)
    figo = np.array(["IB1", "IB2", "IIA1", "IB3", "IIA2"], dtype=object)[size_class]
    crt = np.isin(figo, ["IB3", "IIA2"]).astype(int)
    table: dict[str, Any] = {
        "case_id": [f"SIM{seed}-{c}-{i + 1:04d}" for i, c in enumerate(center)],
        "center": center,
        "age": rng.normal(52, 10, n_cases).round(0),
        "histology": rng.choice(np.array(["SCC", "AC", "ASC"], dtype=object), size=n_cases, p=[0.78, 0.1, 0.12]),
        "scc_ag": np.exp(rng.normal(0.5, 0.8, n_cases)).round(2),
        "figo_stage": figo,
        "ln_short_axis_mm": short_axis,
        "c_lnm": c_lnm,
        "lnm": lnm,
        "stage_group": np.where(crt == 1, "chemoradiotherapy", "surgery"),
        "stage_group_crt": crt,
    }
    latent = {"z1": z1, "z2": z2}
    out = SimulatedTable(frame=None)
    features: dict[str, np.ndarray] = {}

    # radiomics: signal (latent + noise), near-copies of the signal, noise
    for name, (trait, sign) in SIGNAL_RADIOMICS.items():
        features[name] = sign * latent[trait] + 0.5 * rng.normal(size=n_cases)
    for name, source in DUPLICATE_RADIOMICS.items():
        features[name] = 1.3 * features[source] + 0.1 * rng.normal(size=n_cases)
    noise_names = []
    for k in range(n_noise_radiomics):
        name = radiomic_name(ROLES[k % 4], _NOISE_STEMS[k % len(_NOISE_STEMS)])
        if name in features:  # unique names beyond the 60 role x stem combinations
            name = f"{name}{k}"
        features[name] = rng.normal(size=n_cases)
        noise_names.append(name)
    out.signal["radiomics"] = list(SIGNAL_RADIOMICS)
    out.duplicates["radiomics"] = list(DUPLICATE_RADIOMICS)
    out.noise["radiomics"] = noise_names

    for family, strength in deep_families.items():
        signal, dup, noise = [], [], []
        for j in range(deep_width):
            role = "CET1" if j % 2 == 0 else "T2W"
            name = deep_name(role, encoder_of_family(family), j)
            if j == 1 and strength > 0:
                features[name] = strength * (0.7 * z1 + 0.7 * z2) + 0.6 * rng.normal(size=n_cases)
                signal.append(name)
            elif j == 2 and strength > 0:
                features[name] = 1.1 * features[deep_name("T2W", encoder_of_family(family), 1)] + 0.08 * rng.normal(size=n_cases)
                dup.append(name)
            else:
                features[name] = rng.normal(size=n_cases)
                noise.append(name)
        out.signal[family], out.duplicates[family], out.noise[family] = signal, dup, noise

    # make features look like measurements (positive, arbitrary units), then add scanner effects
    for k, name in enumerate(sorted(features)):
        level = 10.0 ** (k % 5)
        features[name] = level * (3.0 + features[name])
    if batch_effects:
        for c_index, c in enumerate(centers):
            if c_index == 0:
                continue  # the first centre is the "reference-like" scanner
            out.batch[c] = {}
            mask = center == c
            for name in features:
                scale = float(rng.uniform(0.75, 1.3))
                shift = float(rng.normal(0.0, 0.6)) * float(np.std(features[name]))
                features[name][mask] = features[name][mask] * scale + shift
                out.batch[c][name] = (scale, shift)
    table.update(features)
    frame = pd.DataFrame(table)

    train_center = train_center or centers[0]
    split = np.full(n_cases, "external", dtype=object)
    home = np.flatnonzero(center == train_center)
    shuffled = rng.permutation(home)
    n_train = int(round(0.7 * len(home)))
    split[shuffled[:n_train]] = "train"
    split[shuffled[n_train:]] = "internal"
    frame["split"] = split
    out.frame = frame
    return out
