"""Training data for the segmentation network: case folders -> cached working-grid arrays.

Each case is co-registered onto its T2WI once (`registration.rule`, as segmentation does), prepared by the
very same `segmentation.preprocess.prepare_inputs` the runtime uses (working grid + the declared
normalisation), and stored in a cache folder as plain .npy arrays (never pickles), so training
epochs and resumed runs never re-register. Targets: the tumour (`labels/tumor.nii.gz`) and any
anatomical structures, read BY NAME from `labels/organs.nii.gz` through its label table; with
domain randomisation the whole organ label map is cached too. The cache key covers the roles,
the structures, the preprocessing declaration and the case's file hashes' cheap proxies (size
and modification time).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.contracts.label_table import TUMOR, canonical_name, label_mask, read_label_table
from CervicalAILib.core.atomic import atomic_path, write_json
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.core.progress import ProgressCallback, no_progress
from CervicalAILib.io.case import is_case_folder, load_case, read_transforms
from CervicalAILib.io.geometry import plane_tilt_deg
from CervicalAILib.registration.resample import onto_t2_grid
from CervicalAILib.registration.rule import resolve_transforms
from CervicalAILib.segmentation.preprocess import intensity_summary, prepare_inputs, resample_onto

log = logging.getLogger(__name__)


@dataclass
class CachedCase:
    """One case on the working grid: image (C, z, y, x) float32; targets (K, z, y, x) uint8, one
    channel per trained structure, tumour first; optionally the anatomy label map (z, y, x) uint8
    that domain randomisation synthesises images from."""

    case_id: str
    image: np.ndarray
    targets: np.ndarray
    stats: dict[str, Any]
    label_map: np.ndarray | None = None

    @property
    def label(self) -> np.ndarray:
        """The tumour target (z, y, x)."""
        return self.targets[0]


def find_cases(paths: Sequence[str | Path]) -> list[Path]:
    """Case folders named directly or found one level inside cohort folders, in sorted order."""
    cases: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if is_case_folder(path):
            cases.append(path)
        elif path.is_dir():
            found = sorted(child for child in path.iterdir() if is_case_folder(child))
            if not found:
                raise InputError("no case folders here (a case folder holds T2W.nii.gz)", path)
            cases.extend(found)
        else:
            raise InputError("not a case folder or a cohort folder", path)
    if not cases:
        raise InputError("no training cases given")
    return cases


def _cache_key(
    case_dir: Path, roles: Sequence[str], preprocessing: dict[str, Any], register: bool,
    structures: Sequence[str], with_label_map: bool,
) -> str:
    files = sorted(p for p in case_dir.rglob("*") if p.is_file())
    stamp = [(str(p.relative_to(case_dir)), p.stat().st_size, int(p.stat().st_mtime)) for p in files]
    payload = json.dumps({"roles": list(roles), "pre": preprocessing, "register": register, "files": stamp,
                          "structures": list(structures), "label_map": with_label_map}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# Label value given to tumour voxels in a synthesis label map whose table has no tumour label.
TUMOR_IN_LABEL_MAP = 255


def prepare_case(
    case_dir: Path,
    roles: Sequence[str],
    preprocessing: dict[str, Any],
    register: bool = True,
    structures: Sequence[str] = (TUMOR,),
    with_label_map: bool = False,
) -> CachedCase:
    """Register, resample and normalise one case exactly as the runtime will; its targets.

    The tumour target is `labels/tumor.nii.gz`; every other structure is read by name from
    `labels/organs.nii.gz` and its label table (`contracts.label_table.read_label_table`).
    `with_label_map`: keep the whole organ label map (nearest neighbour) for domain randomisation.
    """
    case = load_case(case_dir)
    missing = [role for role in roles if role not in case.roles]
    if missing:
        raise InputError(f"case lacks {', '.join(missing)} needed for training", case_dir)
    if "tumor" not in case.label_paths:
        raise InputError("case has no labels/tumor.nii.gz to train on", case_dir)
    structures = [canonical_name(s) for s in structures]
    if structures[0] != TUMOR:
        raise InputError(f"the first trained structure must be the tumour, got {structures}")
    images = {role: case.image(role) for role in roles}
    registration: dict[str, Any] = {}
    if register and len(roles) > 1:
        # the runtime's rule (registration.rule): same grid, stored transform, the ADC's for the DWI, or registered now
        transforms = resolve_transforms(images, roles, read_transforms(case_dir))
        images = onto_t2_grid(images, roles, transforms)
        registration = {role: round(float(np.linalg.norm(r.translation_mm)), 3) for role, r in transforms.results.items()}
    volume, grid = prepare_inputs(images, roles, preprocessing)
    label_on_t2 = sitk.Cast(case.label("tumor") > 0, sitk.sitkFloat32)
    targets = [resample_onto(label_on_t2, grid, "linear") >= 0.5]
    label_map = None
    if len(structures) > 1 or with_label_map:
        if "organs" not in case.label_paths:
            raise InputError("case has no labels/organs.nii.gz (needed for the anatomical structures and for domain "
                             "randomisation; train the tumour alone with --structures tumor --synth-fraction 0)", case_dir)
        table = read_label_table(case_dir, "organs")
        organs = case.label("organs")
        unknown = [name for name in structures[1:] if name not in table]
        if unknown:
            raise InputError(f"the organ label table has no {', '.join(unknown)} (it has {', '.join(table)})", case_dir)
        for name in structures[1:]:
            target = sitk.GetImageFromArray(label_mask(sitk.GetArrayViewFromImage(organs), table[name]).astype(np.float32))
            target.CopyInformation(organs)
            targets.append(resample_onto(target, grid, "linear") >= 0.5)
        if with_label_map:
            label_map = resample_onto(organs, grid, "nearest").astype(np.uint8)
            if TUMOR not in table:
                label_map[targets[0]] = TUMOR_IN_LABEL_MAP
    t2 = case.image("T2W")
    stats = {
        "t2w_spacing_mm": list(t2.GetSpacing()),
        "t2w_tilt_deg": plane_tilt_deg(t2),
        "intensity_p99": {role: intensity_summary(images[role])["p99"] for role in roles},
        "tumor_voxels": int(targets[0].sum()),
        "structures": structures,
        "structure_voxels": {name: int(t.sum()) for name, t in zip(structures, targets, strict=True)},
        "registration_translation_mm": registration,
        "working_shape_zyx": list(volume.shape[1:]),
    }
    return CachedCase(case_dir.name, volume, np.stack(targets).astype(np.uint8), stats, label_map)


def _load_cached(folder: Path) -> CachedCase:
    stats = json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    image = np.load(folder / "image.npy", allow_pickle=False).astype(np.float32)
    targets = np.load(folder / "targets.npy", allow_pickle=False)
    label_map = np.load(folder / "label_map.npy", allow_pickle=False) if (folder / "label_map.npy").is_file() else None
    return CachedCase(stats["case_id"], image, targets, stats, label_map)


def _save_cached(folder: Path, item: CachedCase) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = [("image.npy", item.image.astype(np.float16)), ("targets.npy", item.targets)]
    if item.label_map is not None:
        arrays.append(("label_map.npy", item.label_map))
    for name, array in arrays:
        with atomic_path(folder / name) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, array, allow_pickle=False)
    write_json(folder / "stats.json", {"case_id": item.case_id, **item.stats})  # written last: marks completion


def _prepare_and_cache(args: tuple) -> Path:
    case_dir, roles, preprocessing, register, cache_root, structures, with_label_map = args
    key = _cache_key(case_dir, roles, preprocessing, register, structures, with_label_map)
    folder = cache_root / f"{case_dir.name}-{key}"
    if not (folder / "stats.json").is_file():
        _save_cached(folder, prepare_case(case_dir, roles, preprocessing, register, structures, with_label_map))
    return folder


def build_cache(
    case_dirs: Sequence[Path],
    roles: Sequence[str],
    preprocessing: dict[str, Any],
    cache_dir: str | Path,
    register: bool = True,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
    structures: Sequence[str] = (TUMOR,),
    with_label_map: bool = False,
) -> list[CachedCase]:
    """Prepare every case once (reusing earlier cache entries) and load them all into memory."""
    progress = progress or no_progress
    cache_root = Path(cache_dir)
    cache_root.mkdir(parents=True, exist_ok=True)
    tasks = [(Path(c), list(roles), dict(preprocessing), register, cache_root, list(structures), with_label_map)
             for c in case_dirs]
    folders: list[Path] = []
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for number, folder in enumerate(pool.map(_prepare_and_cache, tasks)):
                folders.append(folder)
                progress((number + 1) / len(tasks), f"prepared {folder.name}")
    else:
        for number, task in enumerate(tasks):
            folders.append(_prepare_and_cache(task))
            progress((number + 1) / len(tasks), f"prepared {task[0].name}")
    return [_load_cached(folder) for folder in folders]


def training_range(cases: Sequence[CachedCase], roles: Sequence[str]) -> dict[str, Any]:
    """The spacing, slice-plane and intensity range seen in training, for the runtime's out-of-range warnings."""
    spacings = np.array([c.stats["t2w_spacing_mm"] for c in cases], dtype=float)
    declared: dict[str, Any] = {
        "t2w_spacing_mm": {"min": spacings.min(axis=0).round(4).tolist(), "max": spacings.max(axis=0).round(4).tolist()},
        "intensity_p99": {
            role: [
                float(min(c.stats["intensity_p99"][role] for c in cases)),
                float(max(c.stats["intensity_p99"][role] for c in cases)),
            ]
            for role in roles
        },
        "tolerance_factor": 1.5,
        "intensity_tolerance_factor": 3.0,
    }
    tilts = [c.stats.get("t2w_tilt_deg") for c in cases]
    if None not in tilts:  # caches written before the tilt was recorded lack it: then nothing is declared
        declared["t2w_tilt_deg"] = {"min": round(min(tilts), 1), "max": round(max(tilts), 1)}
        declared["tilt_tolerance_deg"] = 10.0
    return declared


def dataset_provenance(case_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """What generated the training cases: each cohort's generator.json (version, seed, count)."""
    cohorts: dict[Path, int] = {}
    for case in case_dirs:
        cohorts[Path(case).resolve().parent] = cohorts.get(Path(case).resolve().parent, 0) + 1
    records = []
    for folder, used in sorted(cohorts.items()):
        record: dict[str, Any] = {"cohort": folder.name, "cases_used": used}
        generator = folder / "generator.json"
        if generator.is_file():
            data = json.loads(generator.read_text(encoding="utf-8"))
            for key in ("generator", "version", "seed", "n_cases", "n_centers", "stage_range", "format"):
                if key in data and not isinstance(data[key], dict | list):
                    record[key] = data[key]
            record["generator_json_sha256"] = sha256_file(generator)
        else:
            record["generator"] = "unknown (no generator.json beside the cases)"
        records.append(record)
    return records
