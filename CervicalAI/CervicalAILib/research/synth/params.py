"""Parameters of the synthetic cohort generator: defaults calibrated to seed 004, validation.

Everything that shapes a cohort lives in `SynthParams` and is written to `generator.json`, so a
cohort can be regenerated exactly from that file. Per-case randomness comes from
`case_rng(seed, case_index, stream)`: each case and each purpose (clinical values, anatomy,
tumour shape, noise of each series) has its own independent stream, so a case is the same
whatever the cohort size, the number of worker processes or the order in which cases are made.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from CervicalAILib.core.errors import InputError
from CervicalAILib.scoring.staging import stage_group_of

GENERATOR_NAME = "CervicalAI synthetic pelvic MRI"
# Bump when the same seed and parameters no longer give the same cohort. 2.0.0: MR physics,
# female pelvic anatomy with organ labels, k-space acquisition (docs/synthetic_cohort.md).
GENERATOR_VERSION = "2.0.0"
# Versions this code can make: 1.1.0 is kept (synth/v1) so that 1.x cohorts stay reproducible.
SUPPORTED_VERSIONS = ("1.1.0", GENERATOR_VERSION)
# T2WI planes a cohort may ask for: each centre's protocol, or one plane for every case (generator 2)
T2_ORIENTATIONS = ("site", "axial", "oblique_axial")

# Random streams of one case (case_rng's third key). Never renumber: that changes every cohort.
STREAM_CLINICAL = 0
STREAM_ANATOMY = 1
STREAM_TUMOUR = 2
STREAM_CENTER = 3
STREAM_SERIES = 10  # + series index (T2W, DWI/ADC, CET1, sagittal T2W)

# FIGO 2018 stages. The surgery group of seed 000 is IA-IB2 and IIA1; every other stage is the
# (chemo)radiotherapy group (IB3, IIA2-IVB).
STAGES_EARLY = ("IB1", "IB2", "IB3", "IIA1", "IIA2")
STAGES_FULL = ("IA1", "IA2", "IB1", "IB2", "IB3", "IIA1", "IIA2", "IIB", "IIIA", "IIIB", "IIIC1", "IVA", "IVB")

# Local extension of the primary tumour shown by the images, per FIGO stage.
STAGE_EXTENSION = {
    "IA1": "none", "IA2": "none", "IB1": "none", "IB2": "none", "IB3": "none",
    "IIA1": "vagina_upper", "IIA2": "vagina_upper",
    "IIB": "parametrium", "IIIA": "vagina_lower", "IIIB": "sidewall",
    "IVA": "bladder_rectum", "IVB": "parametrium",
}

HISTOLOGIES = ("SCC", "AC", "ASC")


# Seed 000's treatment groups: 'surgery' (IA-IB2, IIA1) or 'chemoradiotherapy' (IB3, IIA2-IVB);
# one definition for the generator and the staging readout.
stage_group = stage_group_of


def case_rng(seed: int, case_index: int, stream: int) -> np.random.Generator:
    """The random generator of one case and one purpose (independent of every other)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(case_index), int(stream)]))


def _table1_early_mix() -> dict[str, float]:
    # Seed 004, Table 1, all three cohorts pooled (n = 1095): IB1 103, IB2 337, IB3 93, IIA1 303, IIA2 259.
    counts = {"IB1": 103, "IB2": 337, "IB3": 93, "IIA1": 303, "IIA2": 259}
    total = sum(counts.values())
    return {stage: round(count / total, 4) for stage, count in counts.items()}


def _full_local_mix() -> dict[str, float]:
    # Local (T) stage mix for the full IA-IVB range, shaped after seed 000's cohort (about 40 %
    # surgery group, 60 % chemoradiotherapy group once nodal disease upstages to IIIC1).
    return {
        "IA1": 0.03, "IA2": 0.03, "IB1": 0.10, "IB2": 0.16, "IB3": 0.12, "IIA1": 0.10, "IIA2": 0.07,
        "IIB": 0.17, "IIIA": 0.03, "IIIB": 0.09, "IVA": 0.05, "IVB": 0.05,
    }


def _size_by_stage() -> dict[str, tuple[float, float]]:
    # Latent maximum tumour diameter: (median mm, sd of its natural log). FIGO size classes:
    # IB1 <= 2 cm, IB2 2-4 cm, IB3 > 4 cm, IIA1 <= 4 cm, IIA2 > 4 cm; the spread lets a few
    # per cent cross a class limit, as clinical staging does against imaging.
    return {
        "IA1": (4.0, 0.20), "IA2": (7.0, 0.18), "IB1": (14.0, 0.22), "IB2": (29.0, 0.17),
        "IB3": (50.0, 0.15), "IIA1": (27.0, 0.20), "IIA2": (50.0, 0.15), "IIB": (45.0, 0.22),
        "IIIA": (50.0, 0.20), "IIIB": (58.0, 0.18), "IVA": (62.0, 0.16), "IVB": (55.0, 0.20),
    }


def _center_weights() -> tuple[float, ...]:
    # Seed 004's centres A-E: 685, 207, 97, 85, 21 patients.
    return (685.0, 207.0, 97.0, 85.0, 21.0)


@dataclass
class OutcomeModel:
    """The known logistic model of lymph-node metastasis (LNM) and the lymph-node size model.

    logit P(LNM) = intercept
                   + size        * ln(latent diameter / 30 mm)
                   + cellularity * z_cellularity        (lower tumour ADC)
                   + heterogeneity * z_heterogeneity    (texture amplitude in every sequence)
                   + enhancement_heterogeneity * z_enhancement_heterogeneity  (CE-T1WI texture)
                   + stromal_invasion * logit(stromal invasion fraction)     (rim of low-T2 stroma)
                   + vaginal_extension * [vagina]  + parametrial_extension * [parametrium/sidewall/organs]

    The largest pelvic node's short axis is log-normal given LNM (and nothing else), so c_LNM
    (short axis >= 10 mm) is conditionally independent of the tumour biology: the oracle
    probability is exactly sigmoid(linear predictor + log likelihood ratio of c_LNM).
    """

    intercept: float = -1.20
    size: float = 1.25
    cellularity: float = 0.62
    heterogeneity: float = 0.56
    enhancement_heterogeneity: float = 0.62
    stromal_invasion: float = 0.30
    vaginal_extension: float = 0.05
    parametrial_extension: float = 0.6
    # Largest node short axis (mm): log-normal (median, sd of ln) given LNM status.
    node_short_median_negative: float = 5.8
    node_short_sd_negative: float = 0.28
    node_short_median_positive: float = 8.2
    node_short_sd_positive: float = 0.32
    # Short/long axis ratio of the largest node: normal (mean, sd), clipped to [0.35, 0.98].
    node_ratio_mean_negative: float = 0.62
    node_ratio_sd_negative: float = 0.13
    node_ratio_mean_positive: float = 0.70
    node_ratio_sd_positive: float = 0.14
    # Probability of central nodal necrosis: LNM- ; LNM+ with short axis < 10 mm ; >= 10 mm.
    necrosis_negative: float = 0.005
    necrosis_positive_small: float = 0.04
    necrosis_positive_large: float = 0.25
    c_lnm_threshold_mm: float = 10.0

    def c_lnm_rates(self) -> tuple[float, float]:
        """(sensitivity, false-positive rate) of c_LNM implied by the node-size model.

        Short axes are reported to 0.1 mm, so c_LNM is short axis >= 9.95 mm before rounding.
        """
        limit = math.log(self.c_lnm_threshold_mm - 0.05)
        sens = 1.0 - _normal_cdf((limit - math.log(self.node_short_median_positive)) / self.node_short_sd_positive)
        fpr = 1.0 - _normal_cdf((limit - math.log(self.node_short_median_negative)) / self.node_short_sd_negative)
        return sens, fpr


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@dataclass
class SynthParams:
    """All generator parameters (defaults calibrated to seed 004; see docs/synthetic_cohort.md)."""

    # Generator version that renders the images ("1.1.0": the frozen 1.x generator, synth/v1).
    # The clinical values and outcomes of a seed are the same in every version.
    generator_version: str = GENERATOR_VERSION
    stage_range: str = "early"  # "early": IB1-IIA2 as in seed 004; "full": IA1-IVB as in seed 000
    stage_mix_early: dict[str, float] = field(default_factory=_table1_early_mix)
    stage_mix_full: dict[str, float] = field(default_factory=_full_local_mix)
    size_by_stage: dict[str, tuple[float, float]] = field(default_factory=_size_by_stage)
    histology_mix: dict[str, float] = field(default_factory=lambda: {"SCC": 0.80, "AC": 0.10, "ASC": 0.10})
    age_mean: float = 53.0
    age_sd: float = 10.5
    outcome: OutcomeModel = field(default_factory=OutcomeModel)
    # Centres: letters A, B, ...; case shares follow seed 004's centres for the first five.
    center_weights: tuple[float, ...] = field(default_factory=_center_weights)
    # Seed of the centre (scanner/protocol) profiles: a centre letter is the same hospital in
    # every cohort, whatever the cohort seed.
    center_seed: int = 2026
    # Rendering. 1.0 = realistic matrices; < 1 makes every in-plane matrix smaller (coarser
    # pixels, same field of view) for tests and previews.
    matrix_scale: float = 1.0
    # Patient motion between series: sd of each rotation (degrees) and translation (mm).
    motion_rotation_sd_deg: float = 1.5
    motion_translation_sd_mm: float = 1.8
    # ADC is stored as integers in units of 1e-6 mm2/s (e.g. 850 = 0.85e-3 mm2/s), as scanners do.
    adc_unit: str = "1e-6 mm2/s"
    # Generator 2: also acquire a sagittal T2WI (written as T2W_SAG.nii.gz, not a case role).
    sagittal_t2: bool = True
    # Generator 2: orientation of the T2WI: "site" (each centre's protocol: axial or oblique axial
    # perpendicular to the cervical canal), or "axial" / "oblique_axial" for every case.
    t2_orientation: str = "site"

    def validate(self) -> SynthParams:
        """Raise InputError naming the first parameter that cannot produce a cohort."""
        if self.generator_version not in SUPPORTED_VERSIONS:
            raise InputError(f"generator version must be one of {', '.join(SUPPORTED_VERSIONS)}, "
                             f"not {self.generator_version!r}")
        if self.stage_range not in ("early", "full"):
            raise InputError(f"stage range must be 'early' or 'full', not {self.stage_range!r}")
        for name, mix in (("stage_mix_early", self.stage_mix_early), ("stage_mix_full", self.stage_mix_full),
                          ("histology_mix", self.histology_mix)):
            values = np.asarray(list(mix.values()), dtype=float)
            if len(values) == 0 or np.any(~np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
                raise InputError(f"{name} must have non-negative weights with a positive sum, got {mix}")
        known = set(STAGE_EXTENSION)
        for stage in list(self.stage_mix_early) + list(self.stage_mix_full):
            if stage not in known:
                raise InputError(f"unknown FIGO stage {stage!r} in a stage mix (known: {', '.join(sorted(known))})")
            if stage not in self.size_by_stage:
                raise InputError(f"size_by_stage has no entry for stage {stage!r}")
        for stage, (median, sd) in self.size_by_stage.items():
            if not (median > 0 and sd >= 0):
                raise InputError(f"tumour size for stage {stage} must be positive (median {median} mm, sd {sd})")
        for hist in self.histology_mix:
            if hist not in HISTOLOGIES:
                raise InputError(f"unknown histology {hist!r} (known: {', '.join(HISTOLOGIES)})")
        if not (self.age_sd >= 0 and 0 < self.age_mean < 120):
            raise InputError(f"age mean/sd must be plausible, got {self.age_mean}/{self.age_sd}")
        weights = np.asarray(self.center_weights, dtype=float)
        if len(weights) == 0 or np.any(~np.isfinite(weights)) or np.any(weights <= 0):
            raise InputError(f"center weights must be positive, got {self.center_weights}")
        if self.t2_orientation not in T2_ORIENTATIONS:
            raise InputError(f"T2W orientation must be 'site', 'axial' or 'oblique_axial', not {self.t2_orientation!r}")
        if self.t2_orientation != "site" and self.generator_version != GENERATOR_VERSION:
            # generator 1.x planned every T2WI axial and has no such choice: refuse rather than ignore it
            raise InputError(f"a T2W orientation other than 'site' needs generator {GENERATOR_VERSION}, "
                             f"not {self.generator_version}")
        if not (0.1 <= self.matrix_scale <= 2.0):
            raise InputError(f"matrix scale must be between 0.1 and 2, got {self.matrix_scale}")
        if self.motion_rotation_sd_deg < 0 or self.motion_translation_sd_mm < 0:
            raise InputError("patient motion sizes must not be negative")
        o = self.outcome
        for name in ("node_short_median_negative", "node_short_median_positive", "node_short_sd_negative",
                     "node_short_sd_positive", "c_lnm_threshold_mm"):
            if not getattr(o, name) > 0:
                raise InputError(f"outcome.{name} must be positive, got {getattr(o, name)}")
        for name in ("necrosis_negative", "necrosis_positive_small", "necrosis_positive_large"):
            if not 0 <= getattr(o, name) <= 1:
                raise InputError(f"outcome.{name} must be a probability, got {getattr(o, name)}")
        return self

    def stage_mix(self) -> dict[str, float]:
        return self.stage_mix_early if self.stage_range == "early" else self.stage_mix_full

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthParams:
        """Inverse of to_dict (e.g. the `parameters` of a generator.json).

        Parameters without a generator version come from a 1.x generator.json: version 1.1.0.
        """
        data = dict(data)
        data.setdefault("generator_version", "1.1.0")
        if isinstance(data.get("outcome"), dict):
            data["outcome"] = OutcomeModel(**data["outcome"])
        if "size_by_stage" in data:
            data["size_by_stage"] = {k: tuple(v) for k, v in data["size_by_stage"].items()}
        if "center_weights" in data:
            data["center_weights"] = tuple(data["center_weights"])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise InputError(f"unknown generator parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data)


def center_letter(index: int) -> str:
    """Centre 0 -> 'A', 25 -> 'Z', 26 -> 'AA' (spreadsheet style)."""
    letters = ""
    index += 1
    while index > 0:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def case_id(seed: int, center_index: int, case_index: int) -> str:
    """Stable case id: SYN<seed>-<centre letter>-<case number from 0001>."""
    return f"SYN{int(seed)}-{center_letter(center_index)}-{case_index + 1:04d}"
