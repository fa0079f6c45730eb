"""Synthetic multi-parametric pelvic MRI cohorts with known ground truth (issue 3).

    from CervicalAILib.research.synth import generate_case, generate_cohort, sample_cohort_table, SynthParams

    case = generate_case(0, seed=1)                  # one patient: images, labels, clinical, latent
    generate_cohort("out", n_cases=20, seed=1, centers=5, jobs=2)   # case folders + cohort.csv
    table = sample_cohort_table(500, seed=1)         # cohort.csv columns without rendering images

See docs/synthetic_cohort.md for the anatomy, the sequences, the outcome model and its
calibration to seed 004.
"""

from CervicalAILib.research.synth.anatomy import ORGAN_LABELS
from CervicalAILib.research.synth.cohort import CohortResult, generate_cohort, sample_cohort_table
from CervicalAILib.research.synth.params import GENERATOR_VERSION, OutcomeModel, SynthParams, stage_group
from CervicalAILib.research.synth.render import IMAGE_ROLES, SyntheticCase, generate_case

__all__ = [
    "GENERATOR_VERSION",
    "IMAGE_ROLES",
    "ORGAN_LABELS",
    "CohortResult",
    "OutcomeModel",
    "SynthParams",
    "SyntheticCase",
    "generate_case",
    "generate_cohort",
    "sample_cohort_table",
    "stage_group",
]
