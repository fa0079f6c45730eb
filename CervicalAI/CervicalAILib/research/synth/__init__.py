"""Synthetic multi-parametric pelvic MRI cohorts with known ground truth (issues 3 and 13).

    from CervicalAILib.research.synth import generate_case, generate_cohort, sample_cohort_table, SynthParams

    case = generate_case(0, seed=1)                  # one patient: images, labels, clinical, latent
    generate_cohort("out", n_cases=20, seed=1, centers=5, jobs=2)   # case folders + cohort.csv
    table = sample_cohort_table(500, seed=1)         # cohort.csv columns without rendering images

Generator 2 (the default) renders tissue MR properties through the sequences' signal equations
and simulates the acquisition (k-space, noise, artefacts); `SynthParams(generator_version="1.1.0")`
reproduces 1.x cohorts. See docs/synthetic_cohort.md for the anatomy, the sequences, the outcome
model and its calibration to seed 004, and the realism measurement.
"""

from CervicalAILib.research.synth.case import SyntheticCase
from CervicalAILib.research.synth.cohort import CohortResult, generate_cohort, sample_cohort_table
from CervicalAILib.research.synth.labels import ORGAN_GROUPS, ORGAN_LABELS, ORGAN_TABLE, organ_mask
from CervicalAILib.research.synth.params import (
    GENERATOR_VERSION,
    SUPPORTED_VERSIONS,
    OutcomeModel,
    SynthParams,
    stage_group,
)
from CervicalAILib.research.synth.render import IMAGE_ROLES, generate_case

__all__ = [
    "GENERATOR_VERSION",
    "IMAGE_ROLES",
    "ORGAN_GROUPS",
    "ORGAN_LABELS",
    "ORGAN_TABLE",
    "SUPPORTED_VERSIONS",
    "CohortResult",
    "OutcomeModel",
    "SynthParams",
    "SyntheticCase",
    "generate_case",
    "generate_cohort",
    "organ_mask",
    "sample_cohort_table",
    "stage_group",
]
