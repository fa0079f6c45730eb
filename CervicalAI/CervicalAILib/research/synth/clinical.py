"""Clinical values, latent tumour biology and outcomes of one synthetic patient.

Order of the generative model (one independent random stream per case, `STREAM_CLINICAL`):

1. centre (seed 004's centre sizes), age, histology;
2. FIGO stage from the stage mix (seed 004's Table 1 by default, or the full IA-IVB range);
3. latent tumour biology: maximum diameter (log-normal per stage), cellularity (-> ADC),
   texture heterogeneity, enhancement heterogeneity, stromal invasion, necrosis, extension;
4. LNM ~ Bernoulli(sigmoid(linear predictor of the image-visible biology)) (OutcomeModel);
5. the largest pelvic node (short/long axis, necrosis) given LNM only; c_LNM and SRA from it;
6. SCC-Ag from tumour size and cellularity (no information beyond the latent biology);
7. the oracle probabilities: exact P(LNM | biology, c_LNM) and P(chemoradiotherapy group | size,
   extension[, c_LNM]) under this model, i.e. what an ideal reader of the images would say.

The centre is drawn independently of everything else, so centre effects never encode the outcome.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from CervicalAILib.research.synth.params import (
    STAGE_EXTENSION,
    STREAM_CLINICAL,
    SynthParams,
    case_id,
    case_rng,
    center_letter,
    stage_group,
)
from CervicalAILib.scoring.staging import lymph_node_assessment

# Reference diameter of the size term (mm).
SIZE_REFERENCE_MM = 30.0


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _choice(rng: np.random.Generator, mix: dict[str, float]) -> str:
    keys = list(mix)
    weights = np.asarray([mix[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=weights / weights.sum()))]


def center_probabilities(n_centers: int, params: SynthParams) -> np.ndarray:
    """Share of cases per centre: seed 004's centre sizes for the first ones, then equal shares."""
    weights = list(params.center_weights[:n_centers])
    while len(weights) < n_centers:
        weights.append(float(np.mean(params.center_weights)))
    weights = np.asarray(weights, dtype=float)
    return weights / weights.sum()


@dataclass
class PatientBiology:
    """What `sample_patient` draws: clinical values, latent biology and node findings."""

    case_index: int
    case_id: str
    center_index: int
    center: str
    clinical: dict[str, Any]
    latent: dict[str, Any]


def extension_of(stage: str) -> str:
    return STAGE_EXTENSION.get(stage, "none")


def linear_predictor(params: SynthParams, diameter_mm: float, z_cell: float, z_het: float, z_enh: float,
                     invasion_fraction: float, extension: str) -> float:
    """The LNM linear predictor of the outcome model (log-odds before the node findings)."""
    o = params.outcome
    inv = min(max(invasion_fraction, 1e-4), 1 - 1e-4)
    vaginal = 1.0 if extension in ("vagina_upper", "vagina_lower") else 0.0
    parametrial = 1.0 if extension in ("parametrium", "sidewall", "bladder_rectum") else 0.0
    return (
        o.intercept
        + o.size * math.log(diameter_mm / SIZE_REFERENCE_MM)
        + o.cellularity * z_cell
        + o.heterogeneity * z_het
        + o.enhancement_heterogeneity * z_enh
        + o.stromal_invasion * _logit(inv)
        + o.vaginal_extension * vaginal
        + o.parametrial_extension * parametrial
    )


def oracle_lnm_probability(params: SynthParams, eta: float, c_lnm: bool) -> float:
    """Exact P(LNM | image-visible tumour biology, c_LNM) under the generating model."""
    sens, fpr = params.outcome.c_lnm_rates()
    log_lr = math.log(sens / fpr) if c_lnm else math.log((1 - sens) / (1 - fpr))
    return _sigmoid(eta + log_lr)


def _lognormal_pdf(x: float, median: float, sd: float) -> float:
    if sd <= 0:
        return 1.0 if abs(x - median) < 1e-9 else 0.0
    z = (math.log(x) - math.log(median)) / sd
    return math.exp(-0.5 * z * z) / (x * sd * math.sqrt(2 * math.pi))


def oracle_stage_probability(params: SynthParams, diameter_mm: float, extension: str, c_lnm: bool) -> float:
    """Exact P(chemoradiotherapy group | latent diameter, visible extension[, c_LNM]).

    Stages that share the visible extension differ only by size (e.g. IB1/IB2/IB3), so this is
    Bayes' rule over those stages with the stage mix as prior and the log-normal size densities.
    In the full range a node >= 10 mm upstages to IIIC1 (chemoradiotherapy) unless already IV.
    """
    mix = params.stage_mix()
    if params.stage_range == "full" and c_lnm:
        return 1.0
    num = den = 0.0
    for stage, weight in mix.items():
        if extension_of(stage) != extension:
            continue
        median, sd = params.size_by_stage[stage]
        like = weight * _lognormal_pdf(diameter_mm, median, sd)
        den += like
        if stage_group(stage) == "chemoradiotherapy":
            num += like
    if den <= 0:
        return 1.0 if extension not in ("none", "vagina_upper") else 0.0
    return num / den


def sample_patient(case_index: int, seed: int, params: SynthParams, n_centers: int = 1) -> PatientBiology:
    """Draw one patient's clinical values and latent biology (no anatomy, no images)."""
    rng = case_rng(seed, case_index, STREAM_CLINICAL)
    o = params.outcome
    # The order of draws below is part of the generator's definition (reproducibility).
    center_index = int(rng.choice(n_centers, p=center_probabilities(n_centers, params)))
    age = int(round(float(np.clip(rng.normal(params.age_mean, params.age_sd), 24, 88))))
    histology = _choice(rng, params.histology_mix)
    local_stage = _choice(rng, params.stage_mix())
    median, sd = params.size_by_stage[local_stage]
    diameter = float(median * math.exp(sd * rng.standard_normal()))
    diameter = float(np.clip(diameter, 2.0, 95.0))
    z_cell, z_het, z_enh, z_inv, z_enh_mean = rng.standard_normal(5)
    z_cell, z_het, z_enh, z_inv, z_enh_mean = map(float, (z_cell, z_het, z_enh, z_inv, z_enh_mean))
    extension = extension_of(local_stage)
    # Fraction of the cervical stromal rim replaced by tumour: deeper in larger tumours.
    invasion = _sigmoid(0.2 + 1.1 * math.log(diameter / SIZE_REFERENCE_MM) + 0.8 * z_inv)
    if extension in ("parametrium", "sidewall", "bladder_rectum"):
        invasion = max(invasion, 0.97)  # full-thickness stromal invasion
    necrosis_probability = _sigmoid((diameter - 38.0) / 7.0)
    necrotic = bool(rng.random() < necrosis_probability)
    necrosis_fraction = float(rng.uniform(0.03, 0.18)) if necrotic and diameter >= 18 else 0.0
    # Tumour ADC (1e-6 mm2/s): cellularity lowers it; adenocarcinoma a little higher.
    adc = 880.0 - 105.0 * z_cell + (60.0 if histology == "AC" else 0.0)
    adc = float(np.clip(adc + rng.normal(0.0, 25.0), 580.0, 1250.0))
    heterogeneity = float(0.15 * math.exp(0.40 * z_het))
    enhancement_heterogeneity = float(0.16 * math.exp(0.40 * z_enh))
    enhancement_level = float(np.clip(1.0 + 0.12 * z_enh_mean, 0.65, 1.4))

    eta = linear_predictor(params, diameter, z_cell, z_het, z_enh, invasion, extension)
    lnm = bool(rng.random() < _sigmoid(eta))

    # Largest pelvic lymph node, given LNM only.
    if lnm:
        short = o.node_short_median_positive * math.exp(o.node_short_sd_positive * rng.standard_normal())
        ratio = rng.normal(o.node_ratio_mean_positive, o.node_ratio_sd_positive)
    else:
        short = o.node_short_median_negative * math.exp(o.node_short_sd_negative * rng.standard_normal())
        ratio = rng.normal(o.node_ratio_mean_negative, o.node_ratio_sd_negative)
    short = round(float(np.clip(short, 3.0, 20.0)), 1)
    ratio = float(np.clip(ratio, 0.35, 0.98))
    long_axis = round(max(short / ratio, short), 1)
    c_lnm = short >= o.c_lnm_threshold_mm
    if lnm:
        p_necrosis = o.necrosis_positive_large if c_lnm else o.necrosis_positive_small
    else:
        p_necrosis = o.necrosis_negative
    ln_necrosis = bool(rng.random() < p_necrosis) and short >= 5.0
    sra = bool(lymph_node_assessment(short, long_axis, ln_necrosis)["sra"])  # seed 004's three rules

    # Serum SCC antigen (ng/mL): tracks tumour burden in squamous tumours.
    if histology in ("SCC", "ASC"):
        scc_ag = 1.5 * math.exp(1.0 * math.log(diameter / SIZE_REFERENCE_MM) + 0.25 * z_cell + 0.9 * rng.standard_normal())
    else:
        scc_ag = 0.9 * math.exp(0.3 * math.log(diameter / SIZE_REFERENCE_MM) + 0.5 * rng.standard_normal())
    scc_ag = round(float(np.clip(scc_ag, 0.1, 150.0)), 1)

    figo = local_stage
    if params.stage_range == "full" and c_lnm and local_stage not in ("IVA", "IVB"):
        figo = "IIIC1"  # radiological nodal disease (FIGO 2018 IIIC1r)
    group = stage_group(figo)
    center = center_letter(center_index)
    clinical = {
        "case_id": case_id(seed, center_index, case_index),
        "center": center,
        "age": age,
        "figo_stage": figo,
        "histology": histology,
        "ln_short_axis_mm": short,
        "ln_long_axis_mm": long_axis,
        "ln_necrosis": int(ln_necrosis),
        "c_lnm": int(c_lnm),
        "sra": int(sra),
        "scc_ag": scc_ag,
        "lnm": int(lnm),
        "stage_group": group,
        "stage_group_crt": int(group == "chemoradiotherapy"),
    }
    latent = {
        "latent_local_stage": local_stage,
        "latent_extension": extension,
        "latent_diameter_mm": round(diameter, 3),
        "latent_cellularity": round(z_cell, 5),
        "latent_adc": round(adc, 1),
        "latent_heterogeneity": round(heterogeneity, 5),
        "latent_heterogeneity_z": round(z_het, 5),
        "latent_enhancement_heterogeneity": round(enhancement_heterogeneity, 5),
        "latent_enhancement_heterogeneity_z": round(z_enh, 5),
        "latent_enhancement_level": round(enhancement_level, 5),
        "latent_stromal_invasion": round(invasion, 5),
        "latent_necrosis_fraction": round(necrosis_fraction, 5),
        "latent_lnm_linear_predictor": round(eta, 6),
        "oracle_lnm_probability": round(oracle_lnm_probability(params, eta, c_lnm), 6),
        "oracle_stage_probability": round(oracle_stage_probability(params, diameter, extension, c_lnm), 6),
    }
    return PatientBiology(case_index, clinical["case_id"], center_index, center, clinical, latent)

