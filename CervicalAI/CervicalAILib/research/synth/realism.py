"""How far synthetic T2WI is from real T2WI: a classifier two-sample test and tissue contrasts.

Classifier two-sample test (C2ST): square patches of 32 x 32 mm are cut from T2-weighted
volumes of both kinds after a per-volume intensity normalisation and an in-plane resampling to
a common pixel size; each patch is described by texture statistics (intensity percentiles,
moments, gradient, Laplacian-of-Gaussian energies at three scales, grey-level co-occurrence,
power-spectrum slope); a random forest learns to tell real from synthetic, cross-validated so
that whole volumes (or slabs of a volume, when there are few real volumes) are never split
between training and testing. Its out-of-fold AUC is the measure: 0.5 = the texture classifier
cannot tell them apart, 1.0 = every patch is recognised. It takes any number of real studies
(DICOM folders, case folders or image files); every T2-weighted series of a study in an
orientation the generator also makes (axial, oblique axial, sagittal) is used.

Organs that only one sex has are left out: patches overlapping the uterus, cervix, vagina,
parametria, ovaries, tumour or pouch fluid of a synthetic case, or a region given as `exclude`
for a real study (e.g. the prostate of a male study), are not used.

Tissue contrast: median T2WI signal of fat, muscle, urine and femoral-head marrow (ratios to
muscle) and the median ADC of urine, muscle and fat, from the organ labels of synthetic cases
and from regions of interest given for a real study (`realism_rois.json`).

Research code: needs scikit-learn (the research extra).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from CervicalAILib.io.geometry import orientation_label
from CervicalAILib.research.synth.labels import FEMALE_ORGANS, ORGAN_GROUPS, ORGAN_LABELS, organ_mask
from CervicalAILib.research.synth.scanner import motion_transform
from CervicalAILib.research.synth.v1.anatomy import ORGAN_LABELS as V1
from CervicalAILib.study.load import load_study

F32 = np.float32
PATCH_MM = 32.0
PIXEL_MM = 0.8  # common in-plane pixel size of the patches
PATCH_PX = int(round(PATCH_MM / PIXEL_MM))
GENERATED_ORIENTATIONS = ("axial", "oblique-axial", "sagittal", "oblique-sagittal")
FEATURE_NAMES = (
    "q05", "q25", "q50", "q75", "q95", "mean", "sd", "skewness", "kurtosis",
    "gradient_mean", "gradient_p90", "gradient_rel",
    "log1_abs", "log2_abs", "log4_abs", "log1_rel", "log2_rel", "log4_rel",
    "glcm_contrast", "glcm_homogeneity", "glcm_energy", "glcm_correlation", "glcm3_contrast", "glcm3_correlation",
    "spectrum_slope", "spectrum_high_fraction",
)


@dataclass
class Volume:
    """One T2-weighted volume for the comparison."""

    name: str
    kind: str  # "real" or "synthetic"
    array: np.ndarray  # [k, j, i] float32
    spacing: tuple[float, float, float]  # (x, y, z) mm
    orientation: str
    fat_suppressed: bool = False
    exclude: np.ndarray | None = None  # [k, j, i] bool: voxels of organs left out of the comparison
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Loading volumes
# --------------------------------------------------------------------------------------------


def _orientation_of(image: sitk.Image) -> str:
    return orientation_label(image.GetDirection())


def _ellipsoid_mask(image: sitk.Image, regions: list[dict[str, Any]]) -> np.ndarray:
    """Voxels of `image` inside any of the LPS ellipsoids {center: [x, y, z], radii: [rx, ry, rz]} (mm)."""
    size = image.GetSize()
    mask = np.zeros(size[::-1], bool)
    if not regions:
        return mask
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in size[::-1]), indexing="ij")
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing())
    origin = np.asarray(image.GetOrigin())
    points = np.stack([i, j, k], axis=-1) @ (direction * spacing).T + origin
    for region in regions:
        center = np.asarray(region["center"], dtype=float)
        radii = np.asarray(region["radii"], dtype=float)
        mask |= (((points - center) / radii) ** 2).sum(-1) <= 1.0
    return mask


def real_t2_volumes(path: str | Path, rois: dict[str, Any] | None = None) -> list[Volume]:
    """The T2-weighted series of a real study in orientations the generator makes."""
    path = Path(path)
    study = load_study(path)
    regions = (rois or {}).get("exclude", [])
    out = []
    for series in study.series:
        if series.kind != "T2W" or series.orientation not in GENERATED_ORIENTATIONS or series.is_calculated:
            continue
        image = series.image()
        array = sitk.GetArrayFromImage(image).astype(F32)
        out.append(Volume(
            name=f"{path.name}:{series.description or series.number}",
            kind="real", array=array, spacing=tuple(float(v) for v in image.GetSpacing()),
            orientation=series.orientation, fat_suppressed=bool(series.fat_suppressed),
            exclude=_ellipsoid_mask(image, regions), info={"study": path.name},
        ))
    return out


def synthetic_t2_volumes(case_dir: str | Path) -> list[Volume]:
    """T2W (and sagittal T2W_SAG) of a generated case folder; female organs excluded via its labels."""
    case_dir = Path(case_dir)
    truth = json.loads((case_dir / "generator_truth.json").read_text())
    version = str(truth.get("generator", {}).get("version", "1.1.0"))
    fat_sat = bool(truth.get("scanner", {}).get("t2_fat_suppression", False))
    organs = sitk.ReadImage(str(case_dir / "labels" / "organs.nii.gz"))
    exclude_values = female_label_values(version)
    out = []
    for role in ("T2W", "T2W_SAG"):
        file = case_dir / f"{role}.nii.gz"
        if not file.is_file():
            continue
        image = sitk.ReadImage(str(file))
        if role == "T2W":
            exclude = np.isin(sitk.GetArrayFromImage(organs), exclude_values)
        else:  # the organ map lives on the T2W grid: bring it over through the true motion
            moved = sitk.Resample(organs, image, motion_transform(truth["series"][role]).GetInverse(),
                                  sitk.sitkNearestNeighbor, 0)
            exclude = np.isin(sitk.GetArrayFromImage(moved), exclude_values)
        out.append(Volume(
            name=f"{case_dir.name}:{role}", kind="synthetic", array=sitk.GetArrayFromImage(image).astype(F32),
            spacing=tuple(float(v) for v in image.GetSpacing()), orientation=_orientation_of(image),
            fat_suppressed=fat_sat and role == "T2W", exclude=exclude,
            info={"case": case_dir.name, "version": version, "role": role},
        ))
    return out


def female_label_values(version: str) -> list[int]:
    """Organ-label values of organs a male pelvis does not have (and the tumour)."""
    if version.startswith("1."):
        return [V1[n] for n in ("uterus", "cervix", "vagina", "parametrium", "tumor", "ovary")]
    values: list[int] = []
    for name in FEMALE_ORGANS:
        values += list(ORGAN_GROUPS.get(name, (ORGAN_LABELS.get(name),)))
    return [v for v in values if v is not None]


# --------------------------------------------------------------------------------------------
# Patches and their features
# --------------------------------------------------------------------------------------------


def body_mask(array: np.ndarray) -> np.ndarray:
    """Voxels inside the body: above a low threshold, closed, holes filled, per slice."""
    top = float(np.percentile(array, 99.0))
    out = np.zeros(array.shape, bool)
    structure = np.ones((5, 5), bool)
    for k in range(array.shape[0]):
        plane = ndimage.gaussian_filter(array[k], 1.5) > 0.06 * top
        plane = ndimage.binary_closing(plane, structure, iterations=2)
        plane = ndimage.binary_fill_holes(plane)
        labels, n = ndimage.label(plane)
        if n > 1:
            sizes = ndimage.sum(plane, labels, index=np.arange(1, n + 1))
            plane = labels == (1 + int(np.argmax(sizes)))
        out[k] = plane
    return out


def _resample_plane(plane: np.ndarray, spacing: tuple[float, float], pixel: float = PIXEL_MM, order: int = 1
                    ) -> np.ndarray:
    """In-plane resampling to `pixel` mm (Gaussian anti-aliasing when downsampling)."""
    factors = (spacing[1] / pixel, spacing[0] / pixel)  # (rows, columns)
    if order == 1:
        sigma = [max(0.0, 0.5 * (1.0 / f - 1.0)) for f in factors]
        if max(sigma) > 0:
            plane = ndimage.gaussian_filter(plane, sigma)
    return ndimage.zoom(plane, factors, order=order, prefilter=False)


def _glcm_stats(q: np.ndarray, levels: int, distance: int) -> tuple[float, float, float, float]:
    """Contrast, homogeneity, energy and correlation of a symmetric co-occurrence matrix
    (offsets right and down by `distance`)."""
    pairs = [(q[:, :-distance], q[:, distance:]), (q[:-distance, :], q[distance:, :])]
    counts = np.zeros(levels * levels)
    for a, b in pairs:
        counts += np.bincount((a * levels + b).ravel(), minlength=levels * levels)
        counts += np.bincount((b * levels + a).ravel(), minlength=levels * levels)
    p = counts.reshape(levels, levels)
    p /= max(p.sum(), 1.0)
    i, j = np.indices((levels, levels))
    contrast = float((p * (i - j) ** 2).sum())
    homogeneity = float((p / (1.0 + np.abs(i - j))).sum())
    energy = float((p**2).sum())
    mu = float((p * i).sum())
    var = float((p * (i - mu) ** 2).sum())
    correlation = float((p * (i - mu) * (j - mu)).sum() / var) if var > 1e-9 else 1.0
    return contrast, homogeneity, energy, correlation


def _spectrum(patch: np.ndarray) -> tuple[float, float]:
    """Slope of the radially averaged power spectrum (log-log) and the high-frequency power share."""
    n = patch.shape[0]
    window = np.outer(np.hanning(n), np.hanning(n))
    power = np.abs(np.fft.fft2((patch - patch.mean()) * window)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    bins = np.linspace(0.04, 0.5, 13)
    which = np.digitize(f.ravel(), bins)
    radial = np.array([power.ravel()[which == b].mean() if np.any(which == b) else np.nan for b in range(1, len(bins))])
    centers = (bins[:-1] + bins[1:]) / 2
    ok = np.isfinite(radial) & (radial > 0)
    slope = float(np.polyfit(np.log(centers[ok]), np.log(radial[ok]), 1)[0]) if ok.sum() >= 3 else 0.0
    total = float(power[f > 0.04].sum())
    high = float(power[f > 0.25].sum()) / total if total > 0 else 0.0
    return slope, high


def volume_patches(volume: Volume, rng: np.random.Generator, max_patches: int, n_slabs: int = 3
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(features [n, F], slab index [n]) of up to `max_patches` patches of one volume."""
    array = volume.array
    body = body_mask(array)
    inside = body[body].size
    if inside == 0:
        return np.zeros((0, len(FEATURE_NAMES))), np.zeros(0, int)
    low, mid, high = np.percentile(array[body], [5, 50, 95])
    scale = max(float(high - low), 1e-6)
    candidates = []
    planes = {}
    for k in range(array.shape[0]):
        norm = _resample_plane((array[k] - mid) / scale, volume.spacing[:2])
        keep = _resample_plane(body[k].astype(F32), volume.spacing[:2], order=0) > 0.5
        if volume.exclude is not None and volume.exclude[k].any():
            keep &= ~(_resample_plane(volume.exclude[k].astype(F32), volume.spacing[:2], order=0) > 0.5)
        planes[k] = (norm, keep)
        frac = ndimage.uniform_filter(keep.astype(F32), PATCH_PX)  # share of usable pixels around each centre
        half = PATCH_PX // 2
        rows = np.arange(half, norm.shape[0] - half, PATCH_PX // 2)
        cols = np.arange(half, norm.shape[1] - half, PATCH_PX // 2)
        for r in rows:
            for c in cols:
                if frac[r, c] >= 0.97:
                    candidates.append((k, int(r), int(c)))
    if not candidates:
        return np.zeros((0, len(FEATURE_NAMES))), np.zeros(0, int)
    order = rng.permutation(len(candidates))[:max_patches]
    chosen = [candidates[i] for i in sorted(order)]
    derived: dict[int, tuple[np.ndarray, ...]] = {}
    features, slabs = [], []
    n_slices = array.shape[0]
    for k, r, c in chosen:
        if k not in derived:
            norm = planes[k][0]
            gy, gx = np.gradient(norm)
            derived[k] = (norm, np.hypot(gx, gy), *(ndimage.gaussian_laplace(norm, s) * s * s for s in (1.0, 2.0, 4.0)))
        norm, grad, log1, log2, log4 = derived[k]
        half = PATCH_PX // 2
        window = (slice(r - half, r - half + PATCH_PX), slice(c - half, c - half + PATCH_PX))
        features.append(_patch_features(norm[window], grad[window], log1[window], log2[window], log4[window]))
        slabs.append(min(int(k * n_slabs / n_slices), n_slabs - 1))
    return np.asarray(features, dtype=float), np.asarray(slabs, dtype=int)


def _patch_features(p: np.ndarray, grad: np.ndarray, log1: np.ndarray, log2: np.ndarray, log4: np.ndarray) -> list[float]:
    q = np.percentile(p, [5, 25, 50, 75, 95])
    mean, sd = float(p.mean()), float(p.std())
    centered = (p - mean) / sd if sd > 1e-9 else p * 0
    skew = float((centered**3).mean())
    kurt = float((centered**4).mean() - 3.0)
    g_mean, g90 = float(grad.mean()), float(np.percentile(grad, 90))
    logs = [float(np.abs(x).mean()) for x in (log1, log2, log4)]
    rel = [v / max(sd, 1e-6) for v in logs]
    levels = 16
    quant = np.clip(((p + 1.5) / 3.5 * levels).astype(int), 0, levels - 1)
    glcm1 = _glcm_stats(quant, levels, 1)
    glcm3 = _glcm_stats(quant, levels, 3)
    slope, high = _spectrum(p)
    return [*q, mean, sd, skew, kurt, g_mean, g90, g_mean / max(sd, 1e-6), *logs, *rel, *glcm1, glcm3[0], glcm3[3],
            slope, high]


# --------------------------------------------------------------------------------------------
# The classifier two-sample test
# --------------------------------------------------------------------------------------------


@dataclass
class TwoSampleResult:
    auc: float
    auc_ci: tuple[float, float]
    design: str  # how patches were split between training and testing (see two_sample_test)
    fold_aucs: list[float]
    n_patches: dict[str, int]
    n_volumes: dict[str, int]
    n_groups: dict[str, int]
    importances: list[tuple[str, float]]
    real_median_score: float
    synthetic_median_score: float


DESIGNS = ("auto", "study", "orientation", "slab")


def _orientation_family(orientation: str) -> str:
    return orientation.replace("oblique-", "")


def two_sample_test(real: list[Volume], synthetic: list[Volume], seed: int = 0, folds: int = 5,
                    max_real_patches: int = 400, max_synthetic_patches: int = 80, n_slabs: int = 3,
                    design: str = "auto", n_trees: int = 300) -> TwoSampleResult:
    """Out-of-fold AUC of a random forest telling real from synthetic patches.

    What is held out together (never split between training and testing):
    - "study": all series of a real study, all series of a synthetic case (k-fold over them);
      the design of the issue (leave whole volumes out), used when there are >= 3 real studies;
    - "orientation": one orientation (axial or sagittal) of both kinds is the test set and the
      other orientation trains; with one or two real studies this is how whole real volumes are
      left out without the classifier learning "real = the orientation it saw";
    - "slab": a third of the slices of a volume. Diagnostic only: it tells a scan from another
      scan (two series of the same real study score about 0.85-0.98 against each other).
    "auto" picks "study", else "orientation", else "slab".
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, not {design!r}")
    rng = np.random.default_rng(seed)
    rows: list[tuple[np.ndarray, int, str, str, np.ndarray]] = []
    for label, volumes, cap in ((1, real, max_real_patches), (0, synthetic, max_synthetic_patches)):
        for volume in volumes:
            x, slab = volume_patches(volume, rng, cap, n_slabs)
            if len(x):
                source = str(volume.info.get("study") or volume.info.get("case") or volume.name)
                rows.append((x, label, source, _orientation_family(volume.orientation), slab))
    if not rows:
        raise ValueError("no patches could be cut from the volumes")
    x = np.concatenate([r[0] for r in rows])
    y = np.concatenate([np.full(len(r[0]), r[1]) for r in rows])
    source = np.concatenate([np.full(len(r[0]), f"{r[1]}:{r[2]}") for r in rows])
    family = np.concatenate([np.full(len(r[0]), r[3]) for r in rows])
    volume_slab = np.concatenate([np.array([f"{i}:{s}" for s in r[4]]) for i, r in enumerate(rows)])
    real_sources = set(source[y == 1])
    shared_families = sorted(set(family[y == 1]) & set(family[y == 0]))
    if design == "auto":
        design = "study" if len(real_sources) >= 3 else "orientation" if len(shared_families) >= 2 else "slab"
    if design == "study":
        groups = source
        k = min(folds, len(real_sources), len(set(source[y == 0])))
        if k < 2:
            raise ValueError("the study design needs at least two real studies and two synthetic cases")
        splits = list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y, groups))
    elif design == "orientation":
        if len(shared_families) < 2:
            raise ValueError("the orientation design needs two orientations in both kinds of volumes")
        keep = np.isin(family, shared_families)
        x, y, family, volume_slab = x[keep], y[keep], family[keep], volume_slab[keep]
        groups = volume_slab
        splits = [(np.nonzero(family != f)[0], np.nonzero(family == f)[0]) for f in shared_families]
    else:
        groups = volume_slab
        k = min(folds, len(set(groups[y == 1])), len(set(groups[y == 0])))
        if k < 2:
            raise ValueError("need at least two slabs of each kind")
        splits = list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y, groups))
    score = np.full(len(y), np.nan)
    fold_aucs = []
    importances = np.zeros(x.shape[1])
    for train, test in splits:
        model = RandomForestClassifier(n_estimators=n_trees, min_samples_leaf=3, max_features="sqrt",
                                       class_weight="balanced", n_jobs=1, random_state=seed)
        model.fit(x[train], y[train])
        score[test] = model.predict_proba(x[test])[:, 1]
        importances += model.feature_importances_
        if len(np.unique(y[test])) == 2:
            fold_aucs.append(float(roc_auc_score(y[test], score[test])))
    auc = float(roc_auc_score(y, score))
    # 95 % interval: bootstrap over slabs of volumes (resampled within each kind)
    units = np.unique(volume_slab)
    index_of = {u: np.nonzero(volume_slab == u)[0] for u in units}
    real_units = [u for u in units if y[index_of[u][0]] == 1]
    syn_units = [u for u in units if y[index_of[u][0]] == 0]
    brng = np.random.default_rng(seed + 1)
    boot = []
    for _ in range(200):
        pick = np.concatenate([index_of[u] for u in brng.choice(real_units, len(real_units))]
                              + [index_of[u] for u in brng.choice(syn_units, len(syn_units))])
        boot.append(roc_auc_score(y[pick], score[pick]))
    order = np.argsort(importances)[::-1]
    return TwoSampleResult(
        auc=auc,
        auc_ci=(float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))),
        design=design,
        fold_aucs=fold_aucs,
        n_patches={"real": int((y == 1).sum()), "synthetic": int((y == 0).sum())},
        n_volumes={"real": len(real), "synthetic": len(synthetic)},
        n_groups={"real": len(set(groups[y == 1])), "synthetic": len(set(groups[y == 0]))},
        importances=[(FEATURE_NAMES[i], float(importances[i] / importances.sum())) for i in order[:8]],
        real_median_score=float(np.median(score[y == 1])),
        synthetic_median_score=float(np.median(score[y == 0])),
    )


# --------------------------------------------------------------------------------------------
# Tissue contrast
# --------------------------------------------------------------------------------------------

CONTRAST_TISSUES = ("fat", "muscle", "urine", "marrow")


def synthetic_tissue_masks(organs: np.ndarray, version: str) -> dict[str, np.ndarray]:
    """Eroded masks (in-plane) of fat, muscle, urine and femoral-head marrow from a T2W organ map."""
    if version.startswith("1."):
        raw = {"fat": np.isin(organs, [V1["subcutaneous_fat"], V1["pelvic_fat"]]), "muscle": organs == V1["muscle"],
               "urine": organs == V1["bladder"], "marrow": organs == V1["bone"]}
        erosion = {"fat": 2, "muscle": 2, "urine": 4, "marrow": 4}
    else:
        raw = {"fat": organ_mask(organs, "fat"), "muscle": organ_mask(organs, "muscle"),
               "urine": organ_mask(organs, "urine"), "marrow": organ_mask(organs, "femoral_head")}
        erosion = {"fat": 2, "muscle": 2, "urine": 2, "marrow": 4}
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = ndimage.generate_binary_structure(2, 1)
    out = {name: ndimage.binary_erosion(mask, plane, iterations=erosion[name]) for name, mask in raw.items()}
    # the centre of the femoral head, as a region drawn on a real study would be: away from the
    # cortex and the joint also in the neighbouring slices (partial volume of thick slices)
    through = ndimage.binary_erosion(out["marrow"], np.ones((3, 1, 1), bool))
    if through.sum() >= 20:
        out["marrow"] = through
    return out


def synthetic_contrasts(case_dir: str | Path) -> dict[str, float]:
    """T2WI ratios to muscle and ADC medians (1e-6 mm2/s) of one generated case."""
    case_dir = Path(case_dir)
    truth = json.loads((case_dir / "generator_truth.json").read_text())
    version = str(truth.get("generator", {}).get("version", "1.1.0"))
    organs_image = sitk.ReadImage(str(case_dir / "labels" / "organs.nii.gz"))
    organs = sitk.GetArrayFromImage(organs_image)
    t2 = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "T2W.nii.gz"))).astype(float)
    masks = synthetic_tissue_masks(organs, version)
    med = {name: float(np.median(t2[m])) if m.sum() >= 20 else math.nan for name, m in masks.items()}
    out = {f"t2_{name}_muscle": med[name] / med["muscle"] for name in ("fat", "urine", "marrow")}
    adc_image = sitk.ReadImage(str(case_dir / "ADC.nii.gz"))
    moved = sitk.GetArrayFromImage(sitk.Resample(organs_image, adc_image, motion_transform(truth["series"]["ADC"]).GetInverse(),
                                                 sitk.sitkNearestNeighbor, 0))
    adc = sitk.GetArrayFromImage(adc_image).astype(float)
    adc_masks = synthetic_tissue_masks(moved, version)
    for name in ("urine", "muscle", "fat"):
        m = ndimage.binary_erosion(adc_masks[name], iterations=1) if adc_masks[name].sum() > 200 else adc_masks[name]
        out[f"adc_{name}"] = float(np.median(adc[m])) if m.sum() >= 5 else math.nan
    out["t2_fat_suppressed"] = float(bool(truth.get("scanner", {}).get("t2_fat_suppression", False)))
    return out


def real_contrasts(path: str | Path, rois: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """(min, max) over region pairs of each ratio/ADC for a real study with ROIs (LPS spheres)."""
    study = load_study(path)
    t2 = study.image("T2W")
    adc = study.image("ADC") if "ADC" in study.roles_present() else None
    medians: dict[str, list[float]] = {}
    adc_medians: dict[str, list[float]] = {}
    t2_array = sitk.GetArrayFromImage(t2).astype(float)
    adc_array = sitk.GetArrayFromImage(adc).astype(float) if adc is not None else None
    for tissue, regions in rois.get("tissues", {}).items():
        for region in regions:
            spec = [{"center": region["center"], "radii": [region["radius"]] * 3}]
            m = _ellipsoid_mask(t2, spec)
            if m.sum():
                medians.setdefault(tissue, []).append(float(np.median(t2_array[m])))
            if adc is not None:
                m = _ellipsoid_mask(adc, spec)
                if m.sum():  # a region the scanner blanked (0) counts only when all of a tissue's are
                    values = adc_array[m]
                    blanked = float(np.mean(values == 0)) > 0.5
                    adc_medians.setdefault(tissue, []).append(0.0 if blanked else float(np.median(values[values > 0])))
    out: dict[str, tuple[float, float]] = {}
    for name in ("fat", "urine", "marrow"):
        if name in medians and "muscle" in medians:
            ratios = [a / b for a in medians[name] for b in medians["muscle"]]
            out[f"t2_{name}_muscle"] = (min(ratios), max(ratios))
    for name in ("urine", "muscle", "fat"):
        if name in adc_medians:
            measured = [v for v in adc_medians[name] if v > 0] or [0.0]
            out[f"adc_{name}"] = (min(measured), max(measured))
    return out
