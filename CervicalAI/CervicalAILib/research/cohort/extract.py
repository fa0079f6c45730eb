"""Cohort feature extraction: radiomics and deep features for every case, in parallel and resumable.

    config = ExtractionConfig.build(roles=("T2W", "DWI", "CET1"), encoders=["2d", "3d"])
    result = extract_cohort("cohort/", "features.parquet", config, jobs=2)

Per case and sequence the tumour mask is taken on the sequence's OWN acquisition grid
(`registration.masks.sequence_masks`): the case's own delineation `labels/tumor_<ROLE>` when it
has one, else the T2WI mask `labels/tumor` carried by `transforms/<ROLE>.tfm` (written by
`cervicalai study register`), else by a rigid registration run on the fly. So cohort extraction
computes features exactly as the per-patient readout does, and intensities are interpolated once
(by pyradiomics' resampling), never twice. `mask_label` (`--mask-label NAME`) takes
`labels/NAME` on the T2WI grid for every sequence instead, carried like the readout carries the
reader's mask: for a second reader's or the automatic contour (the ICC reproducibility filter),
or to train with the readout's own mask source.

Resumable: each finished case is stored atomically in a parts folder beside the output
(`features.parquet.parts/cases/<case_id>.json.gz`, with the size and time stamp of the case's
files); a rerun with the same configuration skips the cases whose part is there and whose files
have not changed. Parts are kept per component (radiomics of one sequence, deep features of one
encoder) with a digest of what decides their values, so a run with other options (`overwrite`)
recomputes only what changed, e.g. the deep features when only the encoders did. A run with other
options and no `overwrite` is refused, naming the differences. A case that fails gets an error
log (`.parts/errors/<case_id>.log`), a table row with its message in `extraction_error` and no feature
values (fitting lists it among the excluded cases), and an entry in the sidecar; the
other cases go on. The table and the sidecar (`<table>.json`) are written only at the end,
atomically.

Backends: in-process (`jobs=1`), a process pool (`jobs>1`; each worker with one BLAS, ITK and
onnxruntime thread, so that N workers use N cores), or an existing Dask cluster
(`scheduler="tcp://host:8786"`; workers must see the cohort and the encoder bundles at the same paths).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import math
import os
import re
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from CervicalAILib.bundles.defaults import resolve_bundle
from CervicalAILib.contracts.case_folder import require_native_grids
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import BundleError, CervicalAIError, InputError, OutputExistsError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.core.provenance import software_versions as core_software_versions
from CervicalAILib.features.plan import FeaturePlan
from CervicalAILib.io.case import LABELS_DIR, REQUIRED_ROLE, ROLES, find_role_file, is_case_folder
from CervicalAILib.io.geometry import same_grid
from CervicalAILib.registration.masks import read_transforms, sequence_masks
from CervicalAILib.registration.rule import Transforms, resolve_transforms

log = logging.getLogger(__name__)

# Seed 004 extracted features from CE-T1WI, DWI and FS-T2WI; the ADC map is optional.
DEFAULT_ROLES = ("T2W", "DWI", "CET1")
DEFAULT_ENCODERS = ("2d", "3d")  # aliases of the model catalogue (bundles/catalog.py): the shipped encoders
COHORT_CSV = "cohort.csv"
GENERATOR_JSON = "generator.json"
TABLE_SUFFIXES = (".parquet", ".csv")
SIDECAR_SCHEMA = "cervicalai.feature-table/1"
PARTS_SCHEMA = "cervicalai.extraction-parts/1"
PARTS_CONFIG = "config.json"
PARTS_CASES = "cases"
PARTS_ERRORS = "errors"
SAFE_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
# mask sources (registration.masks) plus the one this module adds
REGISTERED_ON_THE_FLY = "registered on the fly"
# single-thread settings every worker gets (inherited by spawned processes)
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
_QUIET_LOGGERS = ("CervicalAILib", "radiomics", "pykwalify")


# ----------------------------------------------------------------------------------------------
# configuration


@dataclass
class ExtractionConfig:
    """What is extracted: sequences, pyradiomics settings, encoder bundles, mask policy.

    Build it with `ExtractionConfig.build(...)`, which validates settings and loads (verifies)
    the encoder bundles once in the calling process.
    """

    roles: tuple[str, ...] = DEFAULT_ROLES
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> pyradiomics parameters
    settings_text: dict[str, str] = field(default_factory=dict)  # role -> YAML text (for the sidecar)
    settings_source: dict[str, str] = field(default_factory=dict)  # role -> file it came from
    encoders: list[dict[str, Any]] = field(default_factory=list)  # {"path", "family", "name", "version", "sha256"}
    register: bool = True  # register on the fly a sequence that has neither its own mask nor a transform
    # labels/<mask_label> (T2WI grid) for every sequence, carried by the transforms as in the readout
    # (a second reader's or the automatic contour, for the ICC filter); None: each sequence's own label
    mask_label: str | None = None

    @classmethod
    def build(cls, roles: Sequence[str] = DEFAULT_ROLES, settings_dir: str | Path | None = None,
              encoders: Sequence[str | Path] | None = DEFAULT_ENCODERS, register: bool = True,
              mask_label: str | None = None) -> ExtractionConfig:
        """Validate the choices. `settings_dir` holds `<ROLE>.yaml` pyradiomics files (default: the
        engine's shipped settings); `encoders` are "2d"/"3d" (the default bundles) or bundle folders;
        None or [] means radiomics only."""
        from CervicalAILib.features.radiomic import default_settings_path, load_settings

        roles = _check_roles(roles)
        if mask_label is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", mask_label):
            raise InputError(f"mask label {mask_label!r} must be a label file name without extension, e.g. tumor_reader2")
        settings, text, source = {}, {}, {}
        for role in roles:
            path = default_settings_path(role)
            if settings_dir is not None:
                path = Path(settings_dir) / f"{role}.yaml"
                if not path.is_file():
                    raise InputError(f"no pyradiomics settings for {role} ({role}.yaml expected in the settings folder)",
                                     settings_dir)
            settings[role] = load_settings(role, path)
            text[role] = path.read_text(encoding="utf-8")
            source[role] = "engine default" if settings_dir is None else path.name
        return cls(roles=roles, settings=settings, settings_text=text, settings_source=source,
                   encoders=resolve_encoders(encoders or []), register=register, mask_label=mask_label)

    def fingerprint(self) -> dict[str, Any]:
        """Everything that decides the feature values; a resumed run must match it exactly."""
        from CervicalAILib.features.radiomic import settings_sha256

        return {
            "schema": PARTS_SCHEMA,
            "roles": list(self.roles),
            "radiomics_settings_sha256": {role: settings_sha256(self.settings[role]) for role in self.roles},
            "encoders": [{k: e[k] for k in ("family", "name", "version", "sha256")} for e in self.encoders],
            "register_on_the_fly": bool(self.register),
            "software": software_versions(),
        } | ({"mask_label": self.mask_label} if self.mask_label else {})

    def components(self) -> dict[str, str]:
        """The units a part is stored and reused in: radiomics per sequence, deep features per encoder.

        Maps the component name ("radiomics:DWI", "deep:dl-resnet2d") to a digest of everything that
        decides its values, so that a run with other options reuses what is still valid.
        """
        fingerprint = self.fingerprint()
        common = {"software": fingerprint["software"], "register_on_the_fly": fingerprint["register_on_the_fly"]}
        if self.mask_label:
            common["mask_label"] = self.mask_label
        out = {}
        for role in self.roles:
            out[f"radiomics:{role}"] = _digest({"role": role, "settings": fingerprint["radiomics_settings_sha256"][role],
                                                **common})
        for encoder, reference in zip(self.encoders, fingerprint["encoders"]):
            roles = [r for r in self.roles if r in encoder["roles"]]
            out[f"deep:{encoder['family']}"] = _digest({"encoder": reference, "roles": roles, **common})
        return out

    def feature_plan(self, components: Sequence[str] | None = None) -> FeaturePlan:
        """The features of `components` (default: all): the readout's FeaturePlan, every feature of each part."""
        wanted = set(self.components() if components is None else components)
        return FeaturePlan.full([r for r in self.roles if f"radiomics:{r}" in wanted], self.settings,
                                [e for e in self.encoders if f"deep:{e['family']}" in wanted])

    def task_view(self, components: Sequence[str] | None = None) -> dict[str, Any]:
        """The picklable part a worker needs, restricted to `components` (default: all)."""
        return {"roles": list(self.roles), "register": self.register, "mask_label": self.mask_label,
                "plan": self.feature_plan(components)}


def _digest(obj: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    roles = [str(r).strip() for r in roles if str(r).strip()]
    if not roles:
        raise InputError(f"no sequence given (choose from {', '.join(ROLES)})")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InputError(f"unknown sequence role(s) {', '.join(unknown)} (known: {', '.join(ROLES)})")
    duplicated = sorted({r for r in roles if roles.count(r) > 1})
    if duplicated:
        raise InputError(f"sequence role(s) given twice: {', '.join(duplicated)}")
    return tuple(r for r in ROLES if r in roles)  # channel order, whatever the order given


def resolve_encoders(specs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Encoder bundles from aliases of the model catalogue ("2d", "3d") or folders; loaded and verified here."""
    from CervicalAILib.features.deep import load_encoder

    resolved: list[dict[str, Any]] = []
    for spec in specs:
        text = str(spec).strip()
        if not text:
            continue
        try:
            path = resolve_bundle(text, "encoder")
        except BundleError as exc:
            raise InputError(f"the default {text} encoder is not installed ({exc}); give an encoder bundle folder "
                             "with --encoders PATH, or extract radiomics only with --no-deep") from None
        encoder = load_encoder(path)
        reference = encoder.reference()
        if any(r["family"] == reference["family"] for r in resolved):
            raise InputError(f"two encoders give the same feature family {reference['family']!r} "
                             f"({path}); their columns would collide")
        resolved.append({"path": str(Path(path).resolve()), "roles": list(encoder.roles), **reference})
    return resolved


def software_versions() -> dict[str, str]:
    """Versions of what computes the features (a resumed run must use the same)."""
    return core_software_versions({"pyradiomics": "radiomics", "SimpleITK": "SimpleITK", "numpy": "numpy",
                                   "onnxruntime": "onnxruntime"})


# ----------------------------------------------------------------------------------------------
# the cohort folder


@dataclass
class CohortIndex:
    """A cohort folder: cohort.csv (in its row order) and the folder of each case."""

    path: Path
    frame: Any  # pandas.DataFrame of cohort.csv, case_id as str
    case_dirs: dict[str, Path]
    csv_sha256: str
    generator: dict[str, Any] | None = None

    @property
    def case_ids(self) -> list[str]:
        return list(self.frame["case_id"])


def _looks_like_case(folder: Path) -> bool:
    return is_case_folder(folder) or (folder / "dicom").is_dir()


def read_cohort_table(cohort: str | Path) -> CohortIndex:
    """Open a cohort folder; InputError for a missing cohort.csv, bad or duplicate case IDs, a listed
    case without a folder, or a case folder that cohort.csv does not list."""
    import pandas as pd

    cohort = Path(cohort)
    if not cohort.is_dir():
        raise InputError("cohort folder not found", cohort)
    csv_path = cohort / COHORT_CSV
    if not csv_path.is_file():
        raise InputError(f"no {COHORT_CSV}: a cohort folder needs {COHORT_CSV} with one row per case "
                         "(case_id, center, outcomes such as lnm, clinical values) beside the case folders", cohort)
    try:
        frame = pd.read_csv(csv_path, dtype={"case_id": str, "center": str}, keep_default_na=True)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types for a broken CSV
        raise InputError(f"cannot read {COHORT_CSV} ({exc})", csv_path) from exc
    if "case_id" not in frame.columns:
        raise InputError(f"no 'case_id' column (columns: {', '.join(map(str, frame.columns[:10]))})", csv_path)
    if frame["case_id"].isna().any():
        rows = [str(i + 2) for i in frame.index[frame["case_id"].isna()][:5]]
        raise InputError(f"{int(frame['case_id'].isna().sum())} row(s) without a case_id (line(s) {', '.join(rows)})",
                         csv_path)
    frame["case_id"] = frame["case_id"].str.strip()
    duplicated = sorted(set(frame.loc[frame["case_id"].duplicated(), "case_id"]))
    if duplicated:
        raise InputError(f"duplicate case IDs ({len(duplicated)}): {', '.join(duplicated[:10])}; each case must appear "
                         "once", csv_path)
    unsafe = [c for c in frame["case_id"] if not SAFE_CASE_ID.match(c)]
    if unsafe:
        raise InputError(f"case ID(s) that cannot name a case folder: {', '.join(map(repr, unsafe[:5]))} "
                         "(letters, digits, '.', '_' and '-' only)", csv_path)
    if "center" not in frame.columns:
        log.warning("%s has no 'center' column: ComBat harmonisation and centre splits will not be possible", csv_path)
    case_dirs = {case_id: cohort / case_id for case_id in frame["case_id"]}
    missing = [c for c, d in case_dirs.items() if not d.is_dir()]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise InputError(f"{len(missing)} case(s) listed in {COHORT_CSV} have no case folder: {shown}", cohort)
    listed = set(case_dirs)
    unlisted = sorted(p.name for p in cohort.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and p.name not in listed and _looks_like_case(p))
    if unlisted:
        shown = ", ".join(unlisted[:10]) + (" ..." if len(unlisted) > 10 else "")
        raise InputError(f"{len(unlisted)} case folder(s) are missing from {COHORT_CSV}: {shown}; add a row for each "
                         "(its outcome and clinical values) or move the folder out of the cohort", cohort)
    generator = None
    if (cohort / GENERATOR_JSON).is_file():
        with contextlib.suppress(OSError, ValueError):
            generator = json.loads((cohort / GENERATOR_JSON).read_text(encoding="utf-8"))
    return CohortIndex(path=cohort, frame=frame.reset_index(drop=True), case_dirs=case_dirs,
                       csv_sha256=sha256_file(csv_path), generator=generator if isinstance(generator, dict) else None)


def case_input_stamp(case_dir: Path) -> dict[str, list[int]]:
    """Size and modification time of every file of a case: a part is reused only if they are unchanged."""
    stamp = {}
    for folder, dirs, files in os.walk(case_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            info = path.stat()
            stamp[path.relative_to(case_dir).as_posix()] = [int(info.st_size), int(info.st_mtime_ns)]
    return stamp


# ----------------------------------------------------------------------------------------------
# one case


class _CaseInputs:
    """Images and labels of one case: a NIfTI case folder, or a DICOM study (case/dicom/ or case/)
    with its labels in case/labels/."""

    def __init__(self, folder: Path, extra_labels: Sequence[str] = ()):
        self.folder = folder
        if is_case_folder(folder):
            from CervicalAILib.io.case import load_case

            require_native_grids(folder, "features", "list the native case folder {native} in the cohort")
            self._source = load_case(folder)
            self.roles = list(self._source.roles)
            self.label_paths = dict(self._source.label_paths)
        else:
            from CervicalAILib.study.load import load_study

            self._source = load_study(folder / "dicom" if (folder / "dicom").is_dir() else folder)
            self.roles = list(self._source.roles_present())
            self.label_paths = {}
            labels = folder / LABELS_DIR
            for name in ("tumor", *(f"tumor_{r}" for r in ROLES), *extra_labels):
                path = find_role_file(labels, name) if labels.is_dir() else None
                if path is not None:
                    self.label_paths[name] = path
        self._labels: dict[str, Any] = {}

    def image(self, role: str):
        return self._source.image(role)

    def label(self, name: str):
        from CervicalAILib.io.images import read_image

        if name not in self._labels:
            self._labels[name] = read_image(self.label_paths[name])
        return self._labels[name]


@dataclass
class CaseFeatures:
    """One case's features (name -> value; NaN where pyradiomics gave none) and how they were made."""

    case_id: str
    features: dict[str, float]
    masks: dict[str, str]  # role -> where its tumour mask came from
    warnings: list[str]
    timings: dict[str, float]  # CPU seconds per stage
    components: dict[str, dict[str, float]] = field(default_factory=dict)  # "radiomics:T2W" -> its features


def case_masks(case: _CaseInputs, images: dict[str, Any], register: bool, warnings: list[str],
               mask_label: str | None = None) -> dict[str, Any]:
    """The tumour mask on each role's own grid (see module docstring); role -> SequenceMask.

    With `mask_label`, labels/<mask_label> (on the T2WI grid) is the mask of every sequence,
    carried by the transforms; the sequences' own labels are not used."""
    if mask_label is not None:
        if mask_label not in case.label_paths:
            found = ", ".join(sorted(case.label_paths)) or "none"
            raise InputError(f"no labels/{mask_label} mask in the case (labels: {found})", case.folder)
        t2_mask = case.label(mask_label)
        if not same_grid(t2_mask, case.image(REQUIRED_ROLE)):
            raise InputError(f"labels/{mask_label} is not on the T2WI grid", case.folder)
    else:
        t2_mask = case.label("tumor") if "tumor" in case.label_paths else None
    own = {}
    for role, image in (images.items() if mask_label is None else ()):
        name = f"tumor_{role}"
        if name in case.label_paths:
            label = case.label(name)
            if same_grid(label, image):
                own[role] = label
            else:
                warnings.append(f"{role}: labels/{name} is not on the {role} grid; not used")
    lacking = [r for r in images if r not in own]
    if lacking and t2_mask is None:
        raise InputError(f"no tumour mask for {', '.join(lacking)}: the case has neither labels/tumor (T2WI) nor "
                         f"labels/tumor_<ROLE> for {'/'.join(lacking)}", case.folder)
    # the readout's rule (registration.rule), for the sequences without their own delineation
    transforms = Transforms()
    if any(r != REQUIRED_ROLE for r in lacking):
        available = {REQUIRED_ROLE: case.image(REQUIRED_ROLE), **images}
        if "DWI" in lacking and "ADC" in case.roles and "ADC" not in available:
            available["ADC"] = case.image("ADC")  # the DWI takes the ADC's transform
        transforms = resolve_transforms(available, lacking, read_transforms(case.folder), register=register)
    masks = sequence_masks(images, t2_mask, transforms.by_role, own, warnings)
    for role in transforms.registered:
        masks[role].source = REGISTERED_ON_THE_FLY
    return masks


def extract_case(case_dir: str | Path, config: ExtractionConfig | dict[str, Any], threads: int | None = None) -> CaseFeatures:
    """Radiomics (and deep features) of one case folder for `config`'s roles; raises on failure.

    `config` is an ExtractionConfig or its `task_view()` (which may ask for some components only).
    `threads` limits onnxruntime's threads. `CaseFeatures.components` groups the values by component.
    """
    view = config.task_view() if isinstance(config, ExtractionConfig) else config
    folder = Path(case_dir)
    timings: dict[str, float] = {}
    warnings: list[str] = []
    clock = time.process_time()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.process_time()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    case = _CaseInputs(folder, extra_labels=[view["mask_label"]] if view.get("mask_label") else [])
    missing = [r for r in view["roles"] if r not in case.roles]
    if missing:
        raise InputError(f"case lacks the {', '.join(missing)} sequence(s) (has: {', '.join(case.roles) or 'none'})",
                         folder)
    images = {role: case.image(role) for role in view["roles"]}
    lap("load")
    masks = case_masks(case, images, view["register"], warnings, mask_label=view.get("mask_label"))
    lap("masks")
    components = view["plan"].apply(images, masks, warnings=warnings, threads=threads, lap=lap).by_component
    features = {name: value for values in components.values() for name, value in values.items()}
    return CaseFeatures(case_id=folder.name, features=features, masks={r: m.source for r, m in masks.items()},
                        warnings=list(dict.fromkeys(warnings)), timings=timings, components=components)


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Per-case warnings go into the part and the sidecar, not onto the console once per case."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    previous = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, previous):
            lg.setLevel(level)


def _run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Worker entry point (process pool, Dask or in-process): never raises, reports failure instead."""
    wall, cpu = time.perf_counter(), time.process_time()
    limits = None
    previous_itk = None
    try:
        if task.get("single_thread"):
            import SimpleITK as sitk
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(1)
            previous_itk = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        with _quiet_logs():
            result = extract_case(task["case_dir"], task["config"], threads=1 if task.get("single_thread") else None)
        return {"case_id": task["case_id"], "ok": True, "components": result.components, "masks": result.masks,
                "warnings": result.warnings, "timings": result.timings,
                "wall_seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
    except Exception as exc:  # noqa: BLE001 - one failed case must not stop the cohort
        return {"case_id": task["case_id"], "ok": False, "error": _one_line(exc),
                "error_type": type(exc).__name__, "traceback": traceback.format_exc(),
                "wall_seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
    finally:
        if limits is not None:
            limits.restore_original_limits()
        if previous_itk is not None:
            import SimpleITK as sitk

            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous_itk)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, CervicalAIError) else f"{type(exc).__name__}: {text}"


# ----------------------------------------------------------------------------------------------
# parts folder (resume)


def parts_dir_for(out: str | Path) -> Path:
    """`features.parquet` -> `features.parquet.parts/` (beside the output)."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def sidecar_path_for(out: str | Path) -> Path:
    """`features.parquet` -> `features.parquet.json` (found by models.table.read_feature_table)."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def _describe_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two configuration fingerprints."""
    differences = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    differences.append(f"{key}.{sub}: {_short(a.get(sub))} before, {_short(b.get(sub))} now")
        else:
            differences.append(f"{key}: {_short(a)} before, {_short(b)} now")
    return differences


def _short(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "[" + ", ".join(f"{v.get('name')}@{v.get('version')}" + (f" ({str(v.get('sha256'))[:10]})" if v.get("sha256") else "")
                               for v in value) + "]"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, str) and len(value) == 64:
        return value[:12] + "..."
    return "absent" if value is None else str(value)


def _prepare_parts(parts: Path, fingerprint: dict[str, Any], overwrite: bool) -> str:
    """Create, resume or (with overwrite) reset the parts folder; returns what was done."""
    config_path = parts / PARTS_CONFIG
    if parts.exists() and not parts.is_dir():
        raise InputError("parts path exists and is not a folder", parts)
    state = "new"
    if parts.is_dir() and any(parts.iterdir()):
        old = None
        if config_path.is_file():
            with contextlib.suppress(OSError, ValueError):
                old = json.loads(config_path.read_text(encoding="utf-8"))
        if old == fingerprint:
            state = "resumed"
        else:
            differences = _describe_differences(old, fingerprint) if isinstance(old, dict) else [
                "no readable config.json in the parts folder"]
            if not overwrite:
                raise OutputExistsError(
                    f"{parts}: holds a partial extraction made with a different configuration ({'; '.join(differences)}); "
                    "rerun with the same options to resume it, use --overwrite to replace it (what is still valid, e.g. "
                    "the radiomics of a sequence whose settings did not change, is reused), or choose another --out")
            log.warning("configuration changed (%s): only the still valid parts in %s are reused", "; ".join(differences),
                        parts)
            state = "changed"
    (parts / PARTS_CASES).mkdir(parents=True, exist_ok=True)
    (parts / PARTS_ERRORS).mkdir(parents=True, exist_ok=True)
    atomic.write_json(config_path, fingerprint)
    return state


def _part_path(parts: Path, case_id: str) -> Path:
    return parts / PARTS_CASES / f"{case_id}.json.gz"


def _error_path(parts: Path, case_id: str) -> Path:
    return parts / PARTS_ERRORS / f"{case_id}.log"


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_part(parts: Path, record: dict[str, Any]) -> None:
    payload = dict(record)
    payload["components"] = {
        name: {"key": c["key"], "cpu_seconds": c.get("cpu_seconds"),
               "features": {k: _json_ready(float(v)) for k, v in c["features"].items()}}
        for name, c in record["components"].items()}
    data = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("utf-8")
    atomic.write_bytes(_part_path(parts, record["case_id"]), gzip.compress(data, compresslevel=3, mtime=0))


def _read_part(parts: Path, case_id: str) -> dict[str, Any] | None:
    path = _part_path(parts, case_id)
    if not path.is_file():
        return None
    try:
        record = json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
    except (OSError, ValueError, EOFError):
        log.warning("unreadable part %s: the case is extracted again", path)
        return None
    if not isinstance(record, dict) or record.get("case_id") != case_id or not isinstance(record.get("components"), dict):
        return None
    return record


def _valid_components(part: dict[str, Any] | None, stamp: dict[str, list[int]], keys: dict[str, str]) -> dict[str, Any]:
    """The components of a stored part that the current configuration can reuse as they are."""
    if part is None or part.get("inputs") != stamp:
        return {}
    return {name: c for name, c in part["components"].items()
            if name in keys and isinstance(c, dict) and c.get("key") == keys[name]}


def _write_error_log(parts: Path, record: dict[str, Any], case_dir: Path) -> Path:
    path = _error_path(parts, record["case_id"])
    text = (f"case: {record['case_id']}\nfolder: {case_dir}\nerror: {record['error']}\n"
            f"type: {record.get('error_type', '')}\ntime: {datetime.now(UTC).isoformat(timespec='seconds')}\n\n"
            f"{record.get('traceback', '')}")
    atomic.write_text(path, text)
    return path


# ----------------------------------------------------------------------------------------------
# backends


@contextlib.contextmanager
def _single_thread_environment() -> Iterator[None]:
    """Environment inherited by spawned workers: one BLAS / OpenMP / ITK thread each."""
    previous = {name: os.environ.get(name) for name in _THREAD_ENV}
    os.environ.update({name: "1" for name in _THREAD_ENV})
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _worker_init() -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def _run_in_process(tasks: list[dict], on_result: Callable[[dict], None]) -> None:
    for task in tasks:
        on_result(_run_task(task))


def _run_process_pool(tasks: list[dict], jobs: int, on_result: Callable[[dict], None]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")  # fork would copy the parent's threads and locks
    with _single_thread_environment():
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init)
    try:
        futures = {pool.submit(_run_task, {**task, "single_thread": True}): task for task in tasks}
        for future in as_completed(futures):
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                raise CervicalAIError(
                    f"a worker process died while extracting case {futures[future]['case_id']} ({exc}; out of memory?); "
                    "finished cases are saved: run the same command again to resume") from None
            on_result(result)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _run_dask(tasks: list[dict], scheduler: Any, on_result: Callable[[dict], None]) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - dask is in the research extra
        raise InputError(f"--scheduler needs dask.distributed ({exc})") from None
    if isinstance(scheduler, Client):
        client, own = scheduler, False
    else:
        try:
            client, own = Client(str(scheduler), timeout="20s", set_as_default=False), True
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"cannot connect to the Dask scheduler at {scheduler} ({exc})") from None
    try:
        keys = {f"cervicalai-extract-{task['case_id']}-{os.getpid()}-{time.time_ns()}": task for task in tasks}
        futures = [client.submit(_run_task, {**task, "single_thread": True}, key=key, pure=False)
                   for key, task in keys.items()]
        for future in as_completed(futures, loop=client.loop):  # the client need not be the default one
            task = keys[future.key]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker lost (killed, out of memory): that case fails
                result = {"case_id": task["case_id"], "ok": False, "error": f"Dask worker failed: {_one_line(exc)}",
                          "error_type": type(exc).__name__, "traceback": traceback.format_exc()}
            on_result(result)
    finally:
        if own:
            client.close()


# ----------------------------------------------------------------------------------------------
# the cohort


@dataclass
class ExtractionResult:
    table: Path
    sidecar: Path
    parts: Path
    n_cases: int
    extracted: list[str]  # case IDs in the table
    failed: list[dict[str, Any]]  # {"case_id", "error", "log"}
    reused: int  # cases taken from an earlier (interrupted) run
    wall_seconds: float
    sidecar_data: dict[str, Any]


def extract_cohort(
    cohort: str | Path,
    out: str | Path,
    config: ExtractionConfig,
    jobs: int = 1,
    scheduler: Any = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> ExtractionResult:
    """Extract every case of `cohort` into the feature table `out` (.parquet or .csv) and its sidecar.

    `jobs` worker processes (1 = in this process) or, with `scheduler` (an address or a
    distributed.Client), the workers of a Dask cluster. Resumes a partial run of the same
    configuration; refuses an existing table unless `overwrite` (which also discards a partial
    run of another configuration). Failed cases are logged, listed and left out; the rest go on.
    """
    progress = progress or no_progress
    start = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"the feature table must end in {' or '.join(TABLE_SUFFIXES)}", out)
    if not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"--jobs must be a positive integer, got {jobs!r}")
    index = read_cohort_table(cohort)
    sidecar_path, parts = sidecar_path_for(out), parts_dir_for(out)
    existing = [p for p in (out, sidecar_path) if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]}: output exists (use --overwrite to replace it; finished cases of the "
                                "same configuration are reused from the parts folder)")
    fingerprint = config.fingerprint()
    state = _prepare_parts(parts, fingerprint, overwrite)

    total = len(index.case_ids)
    keys = config.components()
    records: dict[str, dict[str, Any]] = {}
    kept: dict[str, dict[str, Any]] = {}  # case -> components reused from an earlier run
    tasks = []
    for case_id in index.case_ids:
        stamp = case_input_stamp(index.case_dirs[case_id])
        part = _read_part(parts, case_id) if state != "new" else None
        valid = _valid_components(part, stamp, keys)
        if len(valid) == len(keys):
            records[case_id] = part | {"components": valid}
            continue
        kept[case_id] = valid
        todo = [name for name in keys if name not in valid]
        tasks.append({"case_id": case_id, "case_dir": str(index.case_dirs[case_id]), "inputs": stamp,
                      "config": config.task_view(todo)})
    reused = len(records)
    partly = sum(1 for c in kept.values() if c)
    if reused or partly:
        log.info("resuming: %d of %d case(s) already extracted in %s (%d more in part)", reused, total, parts, partly)
    failures: dict[str, dict[str, Any]] = {}
    stamps = {t["case_id"]: t["inputs"] for t in tasks}
    progress(0.98 * reused / max(total, 1), f"{reused} of {total} case(s) done before; extracting {len(tasks)}")

    def on_result(result: dict[str, Any]) -> None:
        case_id = result["case_id"]
        if result["ok"]:
            components = dict(kept.get(case_id, {}))
            # each component keeps the CPU seconds it cost, so a resumed run can still state the whole cost
            components.update({name: {"key": keys[name], "features": values,
                                      "cpu_seconds": round(result["timings"].get(name.replace(":", " ", 1), 0.0), 4)}
                               for name, values in result["components"].items()})
            record = {k: result[k] for k in ("case_id", "masks", "warnings", "timings", "wall_seconds", "cpu_seconds")}
            record["overhead_cpu_seconds"] = round(sum(result["timings"].get(k, 0.0) for k in ("load", "masks")), 4)
            record["inputs"] = stamps[case_id]
            record["components"] = {name: components[name] for name in keys}  # configuration order
            _write_part(parts, record)
            with contextlib.suppress(FileNotFoundError):
                _error_path(parts, case_id).unlink()
            records[case_id] = record
            status = "done"
        else:
            log_path = _write_error_log(parts, result, index.case_dirs[case_id])
            failures[case_id] = {"case_id": case_id, "error": result["error"], "log": log_path}
            log.warning("%s: extraction failed: %s (log: %s)", case_id, result["error"], log_path)
            status = "FAILED"
        done = len(records) + len(failures)
        progress(0.98 * done / max(total, 1), f"case {done}/{total} {case_id} {status}"
                 + (f" ({len(failures)} failed so far)" if failures else ""))

    if tasks:
        if scheduler is not None:
            backend = "dask"
            _run_dask(tasks, scheduler, on_result)
        elif jobs == 1:
            backend = "in-process"
            _run_in_process(tasks, on_result)
        else:
            backend = f"process pool ({jobs} workers)"
            _run_process_pool(tasks, jobs, on_result)
    else:
        backend = "none (every case reused)"

    ok_ids = [c for c in index.case_ids if c in records]
    failed = [failures[c] for c in index.case_ids if c in failures]
    if not ok_ids:
        first = failed[0] if failed else {"case_id": "?", "error": "no case", "log": ""}
        raise CervicalAIError(f"extraction failed for every case ({len(failed)}); first: {first['case_id']}: "
                              f"{first['error']} (logs in {parts / PARTS_ERRORS})")
    progress(0.99, "writing the feature table")
    frame = _assemble_table(index, ok_ids, records, {f['case_id']: f['error'] for f in failed})
    wall = time.perf_counter() - start
    sidecar = _sidecar(index, out, config, fingerprint, records, ok_ids, failed, reused, tasks, backend, jobs, wall,
                       partly_reused=kept)
    _write_table(frame, out)
    atomic.write_json(sidecar_path, sidecar)
    progress(1.0, f"{len(ok_ids)} case(s) extracted, {len(failed)} failed: {out}")
    return ExtractionResult(table=out, sidecar=sidecar_path, parts=parts, n_cases=total, extracted=ok_ids,
                            failed=[{**f, "log": str(f["log"])} for f in failed], reused=reused,
                            wall_seconds=wall, sidecar_data=sidecar)


def _assemble_table(index: CohortIndex, ok_ids: list[str], records: dict[str, dict[str, Any]],
                    failed: dict[str, str] | None = None):
    """cohort.csv columns (case_id, center first), `extraction_error`, then feature columns (first-seen
    order), in cohort order. A failed case keeps its row with its error message and no feature values,
    so that fitting lists it among the excluded cases instead of losing it silently."""
    import numpy as np
    import pandas as pd

    from CervicalAILib.research.fit.table import EXTRACTION_ERROR

    failed = failed or {}
    extracted = set(ok_ids)
    row_ids = [c for c in index.case_ids if c in extracted or c in failed]
    features_of = {case_id: {name: value for component in records[case_id]["components"].values()
                             for name, value in component["features"].items()} for case_id in ok_ids}
    columns: dict[str, None] = {}
    for case_id in ok_ids:
        columns.update(dict.fromkeys(features_of[case_id]))
    names = list(columns)
    values = np.full((len(row_ids), len(names)), np.nan)
    position = {name: j for j, name in enumerate(names)}
    for i, case_id in enumerate(row_ids):
        for name, value in features_of.get(case_id, {}).items():
            values[i, position[name]] = np.nan if value is None else float(value)
    meta = index.frame.set_index("case_id", drop=False).loc[row_ids]
    first = [c for c in ("case_id", "center") if c in meta.columns]
    meta = meta[first + [c for c in meta.columns if c not in first]].reset_index(drop=True)
    clash = sorted((set(meta.columns) | {EXTRACTION_ERROR}) & set(names))
    if clash or EXTRACTION_ERROR in meta.columns:
        raise InputError(f"{COHORT_CSV} has column(s) named like features: {', '.join((clash or [EXTRACTION_ERROR])[:5])}",
                         index.path / COHORT_CSV)
    meta[EXTRACTION_ERROR] = [failed.get(case_id, "") for case_id in row_ids]
    features = pd.DataFrame(values, columns=names)
    return pd.concat([meta, features], axis=1)


def _write_table(frame, out: Path) -> None:
    with atomic.atomic_path(out) as tmp:
        if out.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, lineterminator="\n", float_format="%.17g")


def _sidecar(index: CohortIndex, out: Path, config: ExtractionConfig, fingerprint: dict[str, Any],
             records: dict[str, dict[str, Any]], ok_ids: list[str], failed: list[dict[str, Any]], reused: int,
             tasks: list[dict], backend: str, jobs: int, wall: float,
             partly_reused: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The provenance the models package carries into a bundle (see models/table.py).

    `partly_reused`: case -> components an earlier run made (the rest were computed now).
    """
    partly_reused = partly_reused or {}
    mask_sources: dict[str, dict[str, int]] = {}
    for case_id in ok_ids:
        for role, source in records[case_id]["masks"].items():
            mask_sources.setdefault(role, {})
            mask_sources[role][source] = mask_sources[role].get(source, 0) + 1
    ran = {t["case_id"] for t in tasks}
    new = [records[c] for c in ok_ids if c in ran]  # (partly) computed in this run
    partial = [c for c in ok_ids if c in ran and partly_reused.get(c)]  # only missing components computed now
    stage_cpu: dict[str, float] = {}
    for record in new:
        for stage, seconds in record["timings"].items():
            stage_cpu[stage] = stage_cpu.get(stage, 0.0) + seconds
    timing = {"backend": backend, "jobs": jobs, "wall_seconds": round(wall, 1),
              "cases_extracted_now": len(new) - len(partial), "cases_completed_now": len(partial),
              "cases_reused": reused}
    if new:
        timing["cpu_seconds_per_case"] = round(sum(r["cpu_seconds"] for r in new) / len(new), 3)
        if not partial:  # a throughput only when every case was extracted whole in this run
            timing["cases_per_minute"] = round(60.0 * len(new) / max(wall, 1e-9), 2)
        timing["stage_cpu_seconds_per_case"] = {k: round(v / len(new), 3) for k, v in stage_cpu.items()}
    # the whole extraction cost per case, including components computed by earlier (resumed) runs
    component_cpu: dict[str, float] = {}
    overhead = 0.0
    for case_id in ok_ids:
        record = records[case_id]
        overhead += float(record.get("overhead_cpu_seconds") or 0.0)
        for name, component in record["components"].items():
            component_cpu[name] = component_cpu.get(name, 0.0) + float(component.get("cpu_seconds") or 0.0)
    if ok_ids:
        timing["component_cpu_seconds_per_case"] = {k: round(v / len(ok_ids), 3) for k, v in component_cpu.items()}
        timing["all_components_cpu_seconds_per_case"] = round((sum(component_cpu.values()) + overhead) / len(ok_ids), 3)
    generator = index.generator or {}
    synthetic = bool(generator.get("generator")) and "cervicalai" in str(generator.get("generator")).lower()
    cohort_info: dict[str, Any] = {"folder": index.path.name, "cohort_csv_sha256": index.csv_sha256,
                                   "cases": len(index.case_ids)}
    if generator:
        cohort_info["generator"] = {k: generator.get(k) for k in ("generator", "version", "seed", "n_cases", "n_centers",
                                                                    "stage_range", "regenerate")}
    n_features: dict[str, int] = {}
    for name, component in (records[ok_ids[0]]["components"].items() if ok_ids else ()):
        family = "radiomics" if name.startswith("radiomics:") else name.split(":", 1)[1]
        n_features[family] = n_features.get(family, 0) + len(component["features"])
    return {
        "schema": SIDECAR_SCHEMA,
        "table": out.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "synthetic": synthetic,
        "cohort": cohort_info,
        "roles": list(config.roles),
        "radiomics_settings": dict(config.settings_text),
        "radiomics_settings_sha256": fingerprint["radiomics_settings_sha256"],
        "radiomics_settings_source": dict(config.settings_source),
        "encoders": [{k: e[k] for k in ("family", "name", "version", "sha256")} for e in config.encoders],
        "features_per_family": n_features,
        "masks": {"policy": (f"labels/{config.mask_label} (T2WI grid) for every sequence, carried by "
                             "transforms/<ROLE>.tfm, else by a rigid registration run on the fly"
                             if config.mask_label else
                             "own delineation labels/tumor_<ROLE> on the sequence's grid, else labels/tumor (T2WI) "
                             "carried by transforms/<ROLE>.tfm, else by a rigid registration run on the fly")
                            + ("" if config.register else " (disabled: scanner geometry)"),
                  "sources": mask_sources},
        "cases": {"in_cohort": len(index.case_ids), "extracted": len(ok_ids), "failed": len(failed)},
        "failed_cases": [{"case_id": f["case_id"], "error": f["error"],
                          "log": os.path.relpath(f["log"], out.parent)} for f in failed],
        "case_warnings": {c: records[c]["warnings"] for c in ok_ids if records[c]["warnings"]},
        "software": fingerprint["software"],
        "timing": timing,
    }
