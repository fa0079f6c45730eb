"""Benchmark: full vs model-driven radiomics extraction, seconds per sequence, peak memory.

    .venv/bin/python Testing/benchmarks/bench_radiomics.py                 # built-in realistic phantoms
    .venv/bin/python Testing/benchmarks/bench_radiomics.py --case DIR      # a case folder (e.g. from `cervicalai synth`)

Each measurement runs in a fresh child process (so that the peak resident memory, ru_maxrss, is
that extraction's own), repeated `--repeats` times; the table shows the median wall-clock and CPU
seconds. Writes Testing/benchmarks/results/radiomics.md (atomically) and prints it.

Default cases: a T2-like grid of 0.7 x 0.7 x 4 mm (320 x 320 x 28 voxels), four co-registered
sequences (T2W, DWI, CET1 in arbitrary units, ADC in 1e-6 mm2/s), an irregular tumour of 2, 3.5
or 5 cm maximum diameter with internal heterogeneity. Model-driven = a seed-004-like selection
of 7 features (four wavelet, two LBP, one gradient) over CET1, DWI and T2W.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "Testing" / "benchmarks" / "results" / "radiomics.md"

# seed 004 kept four wavelet, two LBP and one gradient feature over CE-T1WI, DWI and FS-T2WI
SELECTED = [
    "CET1_wavelet-HLH_gldm_SmallDependenceEmphasis",
    "CET1_wavelet-LHL_glcm_Idmn",
    "DWI_wavelet-HHL_firstorder_Skewness",
    "T2W_wavelet-LLH_glszm_ZoneEntropy",
    "T2W_lbp-3D-m1_glrlm_RunEntropy",
    "DWI_lbp-3D-k_firstorder_Median",
    "CET1_gradient_ngtdm_Busyness",
]
STUDY_ROLES = ("T2W", "DWI", "CET1")  # seed 004's three sequences
VARIANTS = (
    "default",  # settings/T2W.yaml
    "native-spacing",  # no in-plane downsampling: 0.7 x 0.7 x 4 mm
    "coarse-1.5mm",  # 1.5 x 1.5 x 4 mm
    "half-bin-width",  # twice the grey levels
    "log-5-sigmas",  # LoG sigma 1-5 mm instead of 1-3 mm
    "lbp-3-levels",  # LBP3D levels 3 instead of 2
    "no-glcm-mcc",  # GLCM without the maximal correlation coefficient (an eigenvalue problem per angle)
)


# ------------------------------------------------------------------------------------- phantom


def _texture(rng, shape, spacing, sigma_mm):
    noise = sitk.GetImageFromArray(rng.standard_normal(shape).astype(np.float32))
    noise.SetSpacing(spacing)
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(noise, sigma_mm))
    return smooth / smooth.std()


def make_phantom(diameter_mm: float, seed: int = 0, size=(320, 320, 28), spacing=(0.7, 0.7, 4.0)):
    """Four co-registered sequences and an irregular tumour of about `diameter_mm` maximum diameter."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = size
    shape = (nz, ny, nx)
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float32)
    xm, ym, zm = (x - nx / 2) * spacing[0], (y - ny / 2) * spacing[1], (z - nz / 2) * spacing[2]
    body = (xm / 150) ** 2 + (ym / 105) ** 2 < 1
    # irregular tumour: three overlapping ellipsoids with a bumpy surface
    radius = diameter_mm / 2
    bump = 0.12 * _texture(rng, shape, spacing, 3.0)
    tumour = np.zeros(shape, bool)
    for dx, dy, dz, scale in ((0, 0, 0, 0.8), (0.3, 0.15, 0.1, 0.6), (-0.25, -0.2, -0.15, 0.55)):
        r2 = ((xm - dx * radius) / (scale * radius)) ** 2 + (
            (ym - dy * radius) / (0.85 * scale * radius)
        ) ** 2
        r2 += ((zm - dz * radius) / (scale * radius)) ** 2
        tumour |= r2 < (1 + bump)
    necrosis = tumour & (_texture(rng, shape, spacing, 4.0) > 1.3)
    images = {}
    recipes = {  # role: (background tissue, tumour, necrosis, noise) in the sequence's units
        "T2W": ((260, 70), (400, 45), (650, 40), 10),
        "DWI": ((90, 25), (320, 50), (120, 20), 12),
        "CET1": ((300, 60), (520, 80), (180, 20), 10),
        "ADC": ((1700, 180), (850, 110), (2200, 150), 40),
    }
    for role, ((bg, bg_sd), (tu, tu_sd), (ne, ne_sd), noise) in recipes.items():
        array = np.where(body, bg + bg_sd * _texture(rng, shape, spacing, 5.0), 5.0)
        array[tumour] = (tu + tu_sd * _texture(rng, shape, spacing, 2.0))[tumour]
        array[necrosis] = (ne + ne_sd * _texture(rng, shape, spacing, 2.0))[necrosis]
        array = np.clip(array + noise * rng.standard_normal(shape), 0, None)
        image = sitk.GetImageFromArray(np.round(array).astype(np.int16))
        image.SetSpacing(spacing)
        image.SetOrigin((-nx / 2 * spacing[0], -ny / 2 * spacing[1], -nz / 2 * spacing[2]))
        images[role] = image
    mask = sitk.GetImageFromArray(tumour.astype(np.uint8))
    mask.CopyInformation(images["T2W"])
    return images, mask


def write_phantom_cases(diameters: list[float], folder: Path) -> list[str]:
    """Write the phantoms as case folders once, so that every measuring process only reads them."""
    from CervicalAILib.io.case import write_case

    paths = []
    for diameter in diameters:
        images, mask = make_phantom(diameter)
        path = folder / f"phantom_{diameter:g}mm"
        write_case(path, images, labels={"tumor": mask}, overwrite=True)
        paths.append(str(path))
    return paths


def load_inputs(source: str):
    from CervicalAILib.io.case import load_case

    case = load_case(source)
    return case.images(), case.label("tumor")


# ------------------------------------------------------------------------------------- worker


def _worker(task: dict, queue) -> None:
    """One measurement in a fresh process: seconds (wall, CPU) and this process's peak memory."""
    import logging

    import radiomics

    radiomics.setVerbosity(logging.ERROR)  # pyradiomics' own stderr chatter (plain baseline)
    from CervicalAILib.features.radiomic import extract, load_settings

    images, mask = load_inputs(task["source"])
    roles = [role for role in task["roles"] if role in images]
    images = {role: images[role] for role in roles}
    # warm up (imports of pyradiomics, pywt, scipy, trimesh; settings validation) on a small crop,
    # so that the timing is the extraction itself, as in a cohort run after its first case
    cold = time.perf_counter()
    _warm_up(images, mask)
    cold = time.perf_counter() - cold
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settings = None
    if task.get("variant"):
        settings = {role: _variant(load_settings(role), task["variant"]) for role in images}
    per_role: dict[str, tuple[float, float]] = {}
    roi: dict[str, int] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    if task["mode"] == "plain":  # pyradiomics' own execute(), the baseline our driver must match
        from radiomics import featureextractor

        extractor = featureextractor.RadiomicsFeatureExtractor(load_settings(roles[0]))
        values = extractor.execute(sitk.Cast(images[roles[0]], sitk.sitkFloat32), mask)
        n_features = sum(1 for name in values if not name.startswith("diagnostics_"))
    elif task["mode"] == "model":  # one call over all sequences, as the readout does
        result = extract(images, mask, features=SELECTED)
        n_features = len(result.features)
    else:  # full extraction, one sequence at a time so that each gets its own wall and CPU time
        n_features = 0
        for role in roles:
            role_wall, role_cpu = time.perf_counter(), time.process_time()
            result = extract({role: images[role]}, mask, settings=settings)
            per_role[role] = (time.perf_counter() - role_wall, time.process_time() - role_cpu)
            roi[role] = result.provenance["roles"][role]["roi_voxels_radiomics_grid"]
            n_features += len(result.features)
    queue.put(
        {
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "n_features": n_features,
            "per_role": per_role,
            "roi": roi,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "base_rss_mb": base_rss / 1024,
            "cold": cold,
        }
    )


def _warm_up(images: dict, mask) -> None:
    from CervicalAILib.features.radiomic import extract

    zyx = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)
    lower, upper = zyx.min(axis=0)[::-1], zyx.max(axis=0)[::-1]
    centre = (lower + upper) // 2
    start = [int(max(c - 12, 0)) for c in centre[:2]] + [int(max(centre[2] - 3, 0))]
    size = [24, 24, 6]
    small = {role: sitk.RegionOfInterest(image, size, start) for role, image in images.items()}
    names = [
        f"{role}_{image}_glcm_Idmn" for role in small for image in ("wavelet-HLH", "lbp-3D-k", "gradient")
    ]
    extract(small, sitk.RegionOfInterest(mask, size, start), features=names)


def _variant(params: dict, variant: str) -> dict:
    params = copy.deepcopy(params)
    setting = params["setting"]
    if variant == "native-spacing":
        setting["resampledPixelSpacing"] = [0.7, 0.7, 4.0]
    elif variant == "coarse-1.5mm":
        setting["resampledPixelSpacing"] = [1.5, 1.5, 4.0]
    elif variant == "half-bin-width":
        setting["binWidth"] = setting["binWidth"] / 2
    elif variant == "log-5-sigmas":
        params["imageType"]["LoG"]["sigma"] = [1.0, 2.0, 3.0, 4.0, 5.0]
    elif variant == "lbp-3-levels":
        setting["lbp3DLevels"] = 3
    elif variant == "no-glcm-mcc":
        from radiomics import getFeatureClasses

        names = getFeatureClasses()["glcm"].getFeatureNames()
        params["featureClass"]["glcm"] = sorted(
            n for n, deprecated in names.items() if not deprecated and n != "MCC"
        )
    elif variant != "default":
        raise ValueError(variant)
    return params


def measure(task: dict, repeats: int) -> dict:
    context = mp.get_context("spawn")
    runs = []
    for _ in range(repeats):
        queue = context.Queue()
        process = context.Process(target=_worker, args=(task, queue))
        process.start()
        runs.append(queue.get())
        process.join()
    keys = ("wall", "cpu", "rss_mb", "base_rss_mb", "cold")
    summary = {key: statistics.median(run[key] for run in runs) for key in keys}
    summary["n_features"] = runs[0]["n_features"]
    summary["roi"] = runs[0]["roi"]
    summary["per_role"] = {
        role: tuple(statistics.median(run["per_role"][role][i] for run in runs) for i in (0, 1))
        for role in runs[0]["per_role"]
    }
    return summary


# ------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", action="append", help="case folder(s) to use instead of the phantoms")
    parser.add_argument(
        "--diameters", default="20,35,50", help="phantom tumour diameters in mm (default 20,35,50)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-variants", action="store_true", help="skip the settings-cost table")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS/OpenMP threads in the measuring processes (default 1: one extraction per core, as a cohort "
        "run does; more threads only spin-wait on pyradiomics' small matrices)",
    )
    args = parser.parse_args(argv)
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.blas_threads)  # inherited by the spawned measuring processes

    with tempfile.TemporaryDirectory(prefix="bench_radiomics_") as scratch:
        if args.case:
            sources = list(args.case)
        else:
            print("writing phantom cases ...", file=sys.stderr, flush=True)
            sources = write_phantom_cases([float(d) for d in args.diameters.split(",")], Path(scratch))
        lines = _report(args, argv, sources)
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from CervicalAILib.core.atomic import write_text

    write_text(out, text)
    print(text)
    return 0


def _report(args, argv, sources: list[str]) -> list[str]:
    names = [Path(source).name for source in sources]
    load = os.getloadavg()
    lines = [
        "# Radiomics extraction benchmark",
        "",
        f"`{' '.join(['.venv/bin/python', 'Testing/benchmarks/bench_radiomics.py', *(argv or sys.argv[1:])])}`  ",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average at start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (a shared machine: CPU seconds are the steadier figure); "
        f"median of {args.repeats} runs, each in a fresh process with {args.blas_threads} BLAS thread(s); "
        "default settings `CervicalAILib/features/radiomic/settings/`.",
        "",
        "Cases: "
        + (
            "the given case folders"
            if args.case
            else "phantoms (see the script's docstring): T2-like grid "
            "0.7 x 0.7 x 4 mm, 320 x 320 x 28 voxels, irregular tumour of the stated maximum diameter."
        ),
        "",
        f"Model-driven selection ({len(SELECTED)} features, seed-004 style): "
        + ", ".join(f"`{n}`" for n in SELECTED),
        "",
        "## Full vs model-driven (CET1 + DWI + T2W)",
        "",
        "Full = every feature of the three sequences (one call per sequence, summed); model-driven = one call "
        "for the seven selected features, as the readout makes it.",
        "",
        "| case | tumour voxels (T2W radiomics grid 1x1x4 mm) | full: features | full wall s | full CPU s "
        "| model-driven wall s | model-driven CPU s | speed-up wall / CPU | peak RSS full / model MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    per_sequence = {}
    full_case_cpu = []
    for source, name in zip(sources, names, strict=True):
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        full = measure({"source": source, "mode": "full", "roles": [*STUDY_ROLES, "ADC"]}, args.repeats)
        model = measure({"source": source, "mode": "model", "roles": list(STUDY_ROLES)}, args.repeats)
        per_sequence[name] = full["per_role"]
        study = [role for role in STUDY_ROLES if role in full["per_role"]]
        study_wall = sum(full["per_role"][role][0] for role in study)
        study_cpu = sum(full["per_role"][role][1] for role in study)
        n_study = full["n_features"] * len(study) // len(full["per_role"])
        full_case_cpu.append(study_cpu)
        lines.append(
            f"| {name} | {full['roi'].get('T2W', '?')} | {n_study} | {study_wall:.2f} | {study_cpu:.2f} "
            f"| {model['wall']:.2f} | {model['cpu']:.2f} | {study_wall / model['wall']:.1f}x / "
            f"{study_cpu / model['cpu']:.1f}x | {full['rss_mb']:.0f} / {model['rss_mb']:.0f} |"
        )

    lines += [
        "",
        "## Full extraction per sequence: wall s / CPU s",
        "",
        "| sequence | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for role in (*STUDY_ROLES, "ADC"):
        cells = [
            f"{per_sequence[name][role][0]:.2f} / {per_sequence[name][role][1]:.2f}"
            if role in per_sequence[name]
            else "-"
            for name in names
        ]
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    mean_cpu = statistics.mean(full_case_cpu)
    lines += [
        "",
        f"Cohort projection: {mean_cpu:.1f} CPU s per case for CET1 + DWI + T2W (mean over the cases above) x 1100 "
        f"cases / 2 cores (one case per core) = **{1100 * mean_cpu / 2 / 60:.0f} min**.",
    ]

    middle = sources[len(sources) // 2]
    plain = measure({"source": middle, "mode": "plain", "roles": ["T2W"]}, args.repeats)
    ours = measure({"source": middle, "mode": "full", "roles": ["T2W"]}, args.repeats)
    lines += [
        "",
        f"## Baseline: plain pyradiomics `execute()` vs `CervicalAILib.features.radiomic.extract()` (T2W, {Path(middle).name})",
        "",
        "Same settings; the values agree to ~1e-12 relative (Testing/python/features/radiomic/test_extraction.py).",
        "",
        "| | features | wall s | CPU s | peak RSS MB |",
        "|---|---|---|---|---|",
        f"| pyradiomics execute() | {plain['n_features']} | {plain['wall']:.2f} | {plain['cpu']:.2f} "
        f"| {plain['rss_mb']:.0f} |",
        f"| CervicalAILib extract() | {ours['n_features']} | {ours['wall']:.2f} | {ours['cpu']:.2f} "
        f"| {ours['rss_mb']:.0f} |",
        "",
        f"Peak RSS is the whole measuring process: Python, numpy, SimpleITK, pyradiomics and the case's four "
        f"images take ~{ours['base_rss_mb']:.0f} MB before the extraction starts. Timings exclude the first call "
        f"in a process (imports of pyradiomics and its filters, settings validation: {ours['cold']:.1f} s wall "
        "including a small warm-up extraction), as in a cohort run after its first case.",
    ]

    if not args.no_variants:
        lines += [
            "",
            f"## What the full extraction costs under other settings (T2W, {Path(middle).name})",
            "",
            "| settings | features | wall s | CPU s |",
            "|---|---|---|---|",
        ]
        for variant in VARIANTS:
            print(f"variant {variant} ...", file=sys.stderr, flush=True)
            result = measure(
                {"source": middle, "mode": "full", "roles": ["T2W"], "variant": variant}, args.repeats
            )
            lines.append(
                f"| {variant} | {result['n_features']} | {result['wall']:.2f} | {result['cpu']:.2f} |"
            )
    return lines


if __name__ == "__main__":
    sys.exit(main())
