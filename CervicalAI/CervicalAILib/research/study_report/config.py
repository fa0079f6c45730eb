"""What a study report runs: its fixed design (paper 004's cohort shapes and split), the models it may fit
besides paper 004's two (VARIANTS), the run's options (StudyReportConfig) and the command that repeats it."""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from CervicalAILib.bundles.catalog import refuse_shipped_folder
from CervicalAILib.core.errors import InputError
from CervicalAILib.research.cohort.config import DEFAULT_ENCODERS, DEFAULT_ROLES

BASE_CASES = 1100  # paper 004 (Bao et al., the DLRC nomogram): 1095 patients
CENTERS = 5  # paper 004: five centres
TRAIN_CENTER = "A"
TRAIN_FRACTION = 0.7
SPLIT_STRATUM = "lnm"  # both endpoints share the split of centre A, stratified by LNM
ENDPOINTS = ("lnm", "stage_group")  # each fitted into a bundle named as the shipped default for it (the model catalogue)
GENERATION_RECORD = "cohort_generation.json"  # in the work folder: wall and CPU seconds of generating the cohort
ORACLE_COLUMNS = {"lnm": "oracle_lnm_probability", "stage_group": "oracle_stage_probability"}
COHORT_LABELS = {"training": "Training", "internal_validation": "Internal validation",
                 "external_validation": "External validation"}
ENDPOINT_TITLES = {"lnm": "lymph-node metastasis (LNM)", "stage_group": "chemoradiotherapy stage group (IB3, IIA2-IVB)"}
SHORT_TITLES = {"lnm": "LNM", "stage_group": "Stage group"}  # figure titles (variants: VARIANTS)


# Models fitted besides paper 004's two (see variants.py): the LNM model without contrast.
CONTRAST_FREE_ROLES = ("T2W", "ADC", "DWI")


@dataclass(frozen=True)
class Variant:
    endpoint: str
    bundle: str  # bundle folder and name (its catalogue entry is the default for the variant's purpose)
    roles: tuple[str, ...]  # the MRI sequences its candidate features may come from
    title: str  # section title
    short: str  # figure titles
    label: str  # its DLRC probability in the comparison with the full model
    statement: str  # added to the bundle's training-data statement
    intended_use: str


VARIANTS = {
    "lnm_no_contrast": Variant(
        endpoint="lnm", bundle="dlrc-lnm-no-contrast", roles=CONTRAST_FREE_ROLES,
        title="LNM without contrast (T2WI + DWI/ADC)", short="LNM without contrast", label="DLRC without contrast",
        statement=(" Model without contrast: the candidate features of every family came from T2W, ADC and DWI only "
                   "(no CE-T1WI feature), the rest of the chain as the full dlrc-lnm model on the same cohort and "
                   "split; the readout uses it when a study has no CE-T1WI."),
        intended_use=("Research use: estimate the probability of pathological pelvic lymph-node metastasis before "
                      "treatment in cervical cancer, as a second opinion for a radiologist, from a reviewed tumour mask "
                      "on pelvic MRI without contrast (T2WI and DWI/ADC) plus clinical values; the readout uses it when "
                      "a study has no CE-T1WI. Not a diagnostic device."),
    ),
}


@dataclass
class StudyReportConfig:
    """Everything a study-report run depends on; written into metrics.json and the report."""

    out: Path
    work: Path | None = None  # cohort + feature table (default: <out>.work beside the report)
    bundles: Path | None = None  # risk-model bundles (default: <out>/bundles)
    seed: int = 4
    scale: float = 1.0
    jobs: int = 2
    matrix_scale: float = 1.0
    roles: tuple[str, ...] = DEFAULT_ROLES
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    settings_dir: Path | None = None
    cohort: Path | None = None  # an existing cohort instead of generating one
    split_seed: int = 42
    min_events: int = 10
    mwu_p: float = 0.01
    figures: bool = True
    overwrite: bool = False
    # models fitted besides paper 004's two (VARIANTS, above), e.g. the LNM model without contrast
    variants: tuple[str, ...] = ("lnm_no_contrast",)
    # fit only the variants (the cohort and feature table as usual); they are compared with the full
    # model of `reference` (a risk bundle fitted on the same cohort and split; default: the shipped one)
    variants_only: bool = False
    reference: Path | None = None
    bundle_version: str = "1.0.0"  # version written into every risk bundle of the run (bump on a refit)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.work = Path(self.work) if self.work is not None else self.out.with_name(self.out.name + ".work")
        self.bundles = Path(self.bundles) if self.bundles is not None else None
        self.settings_dir = Path(self.settings_dir) if self.settings_dir is not None else None
        self.cohort = Path(self.cohort) if self.cohort is not None else None
        self.reference = Path(self.reference) if self.reference is not None else None

        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise InputError(f"unknown model variant(s) {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
        if self.variants_only and not self.variants:
            raise InputError("--variants-only needs at least one variant")
        if self.bundles is not None:  # before the long run: write_bundle would refuse it only at the end
            refuse_shipped_folder(self.bundles, option="--bundles")
        if not re.fullmatch(r"\d+\.\d+\.\d+", str(self.bundle_version)):
            raise InputError(f"--bundle-version must look like 2.0.0, got {self.bundle_version!r}")
        if not (isinstance(self.scale, (int, float)) and 0 < self.scale <= 10):
            raise InputError(f"--scale must be in (0, 10], got {self.scale!r}")
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise InputError(f"--jobs must be a positive integer, got {self.jobs!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"--seed must be a non-negative integer, got {self.seed!r}")
        if self.min_events < 2:
            raise InputError(f"--min-events must be at least 2, got {self.min_events}")
        if not 0 < self.mwu_p < 1:
            raise InputError(f"--mwu-p must be in (0, 1), got {self.mwu_p}")

    @property
    def n_cases(self) -> int:
        return max(1, int(round(BASE_CASES * self.scale)))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
            elif isinstance(value, tuple):
                out[key] = list(value)
        return out


@dataclass
class StudyReportResult:
    out: Path
    metrics: dict[str, Any]
    bundles: dict[str, Path]
    seconds: float
    report: Path = field(default_factory=Path)


def command_text(config: StudyReportConfig) -> str:
    """The `cervicalai study-report` command that reproduces this run (options that differ from the defaults)."""
    defaults = StudyReportConfig(out=config.out)
    parts = ["cervicalai study-report", "--out", shlex.quote(str(config.out))]
    options = [("--seed", "seed"), ("--scale", "scale"), ("--jobs", "jobs"), ("--matrix-scale", "matrix_scale"),
               ("--split-seed", "split_seed"), ("--min-events", "min_events"), ("--mwu-p", "mwu_p"),
               ("--bundle-version", "bundle_version")]
    for flag, name in options:
        if getattr(config, name) != getattr(defaults, name) or name == "seed":
            parts += [flag, str(getattr(config, name))]
    if config.work != defaults.work:
        parts += ["--work", shlex.quote(str(config.work))]
    for flag, value in (("--bundles", config.bundles), ("--cohort", config.cohort), ("--settings", config.settings_dir),
                        ("--reference", config.reference)):
        if value is not None:
            parts += [flag, shlex.quote(str(value))]
    if tuple(config.roles) != tuple(defaults.roles):
        parts += ["--roles", ",".join(config.roles)]
    if not config.encoders:
        parts.append("--no-deep")
    elif tuple(config.encoders) != tuple(defaults.encoders):
        parts += ["--encoders", *(shlex.quote(str(e)) for e in config.encoders)]
    if not config.figures:
        parts.append("--no-figures")
    if tuple(config.variants) != tuple(defaults.variants):
        parts += ["--variants", ",".join(config.variants) or "none"]
    if config.variants_only:
        parts.append("--variants-only")
    return " ".join(parts)
