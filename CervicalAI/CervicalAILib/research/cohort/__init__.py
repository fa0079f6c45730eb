"""Cohort research pipeline: feature extraction for whole cohorts (paper 004's study report, which runs it,
is `research.study_report`).

    from CervicalAILib.research.cohort import ExtractionConfig, extract_cohort
    config = ExtractionConfig.build(roles=("T2W", "DWI", "CET1"), encoders=["2d", "3d"])
    result = extract_cohort("cohort/", "features.parquet", config, jobs=2)   # resumable

A cohort is a folder of case folders plus `cohort.csv` (one row per case: case_id, center,
outcomes, clinical values). The feature table has one row per case: the cohort.csv columns, then
radiomics `{ROLE}_{pyradiomics name}` and deep `{ROLE}_dl-{encoder}_F{index:04d}` columns, with a
sidecar JSON (`<table>.json`) saying which settings, encoders and masks produced them
(the contract `models.table.read_feature_table` reads).
"""

from CervicalAILib.research.cohort.case import extract_case
from CervicalAILib.research.cohort.config import DEFAULT_ROLES, ExtractionConfig
from CervicalAILib.research.cohort.extract import ExtractionResult, extract_cohort
from CervicalAILib.research.cohort.index import read_cohort_table
from CervicalAILib.research.cohort.parts import parts_dir_for
from CervicalAILib.research.cohort.table import sidecar_path_for

__all__ = [
    "DEFAULT_ROLES",
    "ExtractionConfig",
    "ExtractionResult",
    "extract_case",
    "extract_cohort",
    "parts_dir_for",
    "read_cohort_table",
    "sidecar_path_for",
]
