"""Deep-feature benchmark: speed per patient, and what the default encoders' features carry.

    .venv/bin/python Testing/benchmarks/bench_deep.py --cohort /work/enc_runs/probe-seed7 \
        [--speed-cases 10] [--probe-cases 300] [--out Testing/benchmarks/results/deep.md]

Speed: for each of the first --speed-cases cases, every sequence is resampled onto the T2WI grid
(as after co-registration; identity transform here, registration is not what is timed) and the
2D and 3D deep features of all sequences are extracted with the default bundles
(`extract_deep_features`, crop + preprocessing + ONNX inference, one patient = 4 sequences x 2
encoders). Encoder loading (hash check, session, probe run) is timed separately: it happens once
per process. Peak RSS of the process is reported.

Probe (--probe-cases > 0): do the features vary with tumour appearance? On a cohort from a
generator seed never used in training, features are extracted per sequence on its own grid with
its own tumour label; 5-fold cross-validated ridge R^2 (continuous targets: log tumour volume,
latent biology columns of cohort.csv) and logistic AUC (lnm) are computed from the features of
each encoder, next to the same architecture with random (untrained) weights, so the gain of the
self-supervised training is visible. The oracle AUC of the generator is the ceiling.
"""

from __future__ import annotations

import argparse
import csv
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]


def images_on_t2_grid(case) -> tuple[dict[str, sitk.Image], sitk.Image]:
    from CervicalAILib.io.geometry import resample_to_reference

    t2 = case.image("T2W")
    images = {role: case.image(role) if role == "T2W" else resample_to_reference(case.image(role), t2, pixel_type=sitk.sitkFloat32) for role in case.roles}
    return images, case.label("tumor")


def speed(case_dirs: list[Path], encoders: dict[str, Path]) -> dict:
    from CervicalAILib.features.deep import extract_deep_features, load_encoder
    from CervicalAILib.io.case import load_case

    loaded, load_s = {}, {}
    for name, path in encoders.items():
        start = time.perf_counter()
        loaded[name] = load_encoder(path)
        load_s[name] = time.perf_counter() - start
    per_patient, per_encoder, preprocess_s, inference_s, n_roles = [], {n: [] for n in loaded}, [], [], []
    for case_dir in case_dirs:
        case = load_case(case_dir)
        images, mask = images_on_t2_grid(case)
        n_roles.append(len(images))
        total = 0.0
        for name, encoder in loaded.items():
            start = time.perf_counter()
            features = extract_deep_features(images, mask, encoder)
            seconds = time.perf_counter() - start
            assert len(features) == encoder.dim * len(images)
            per_encoder[name].append(seconds)
            total += seconds
            for role, image in images.items():  # split of the same work: crop + preprocessing vs ONNX run
                t0 = time.perf_counter()
                x = encoder.preprocess(image, mask, role)
                t1 = time.perf_counter()
                encoder.encode(x[None])
                t2 = time.perf_counter()
                preprocess_s.append(t1 - t0)
                inference_s.append(t2 - t1)
        per_patient.append(total)
        print(f"speed {case_dir.name}: {total:.3f} s for {len(images)} sequences x {len(loaded)} encoders", file=sys.stderr, flush=True)
    return {
        "load_s": load_s,
        "per_patient_mean": float(np.mean(per_patient)),
        "per_patient_max": float(np.max(per_patient)),
        "per_encoder_mean": {n: float(np.mean(v)) for n, v in per_encoder.items()},
        "preprocess_mean": float(np.mean(preprocess_s)),
        "inference_mean": float(np.mean(inference_s)),
        "sequences": float(np.mean(n_roles)),
        "cases": len(case_dirs),
    }


def own_grid_features(case_dirs: list[Path], encoder, cache: Path | None = None) -> dict[str, np.ndarray]:
    """case_id -> concatenated features of all sequences (own grid, own label).

    With `cache`, the table is kept as .npy/.json files named by the encoder's bundle.json hash.
    """
    import json

    from CervicalAILib.features.deep import extract_deep_features
    from CervicalAILib.io.case import load_case

    if cache is not None:
        key = cache / f"{encoder.name}-{encoder.reference()['sha256'][:12]}-{len(case_dirs)}"
        if key.with_suffix(".npy").is_file():
            ids = json.loads(key.with_suffix(".json").read_text())
            return dict(zip(ids, np.load(key.with_suffix(".npy"))))
    out = {}
    for number, case_dir in enumerate(case_dirs):
        case = load_case(case_dir)
        masks = {role: case.label(f"tumor_{role}") if f"tumor_{role}" in case.label_paths else case.label("tumor") for role in case.roles}
        features = extract_deep_features(case.images(), masks, encoder)
        out[case.case_id] = np.array(list(features.values()))
        if (number + 1) % 25 == 0:
            print(f"probe {encoder.name}: {number + 1}/{len(case_dirs)}", file=sys.stderr, flush=True)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(key.with_suffix(".npy"), np.stack(list(out.values())))
        key.with_suffix(".json").write_text(json.dumps(list(out)))
    return out


def untrained_bundle(trained, work: Path) -> Path:
    """Same architecture and preprocessing as `trained`, random weights (seed 0)."""
    import torch

    from CervicalAILib.research.training.encoder import (
        EncoderTrainingConfig,
        build_backbone,
        export_encoder_bundle,
    )

    saved = dict(trained.bundle.manifest["provenance"]["config"])
    saved.update(encoder_name=f"{saved['encoder_name']}-untrained")
    config = EncoderTrainingConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}).resolved()
    torch.manual_seed(0)
    net = build_backbone(config)
    check = np.random.default_rng(0).normal(size=(4, *config.crop_spec().input_shape)).astype(np.float32)
    path = work / config.encoder_name
    export_encoder_bundle(net, config, path, check, "none: random initial weights (benchmark baseline)", overwrite=True)
    return path


def probe_scores(x: np.ndarray, targets: dict[str, np.ndarray]) -> dict[str, float]:
    import warnings

    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")  # LogisticRegressionCV API notes
    scores = {}
    for name, y in targets.items():
        if set(np.unique(y)) <= {0, 1}:  # L2 logistic regression, its strength chosen by an inner 5-fold CV
            model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 1, 11), cv=5, scoring="roc_auc", max_iter=5000))
            p = cross_val_predict(model, x, y.astype(int), cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")[:, 1]
            scores[name] = float(roc_auc_score(y, p))
        else:
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 20)))
            p = cross_val_predict(model, x, y, cv=KFold(5, shuffle=True, random_state=0))
            scores[name] = float(1.0 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))
    return scores


def probe(cohort: Path, case_dirs: list[Path], encoders: dict[str, Path], cache: Path | None = None) -> dict:
    from sklearn.metrics import roc_auc_score

    from CervicalAILib.features.deep import load_encoder

    with open(cohort / "cohort.csv", newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle)}
    ids = [d.name for d in case_dirs if d.name in rows]
    # latent biology columns of the generator (the z-scored duplicates "_z" left out)
    columns = ["tumor_volume_ml"] + sorted(c for c in next(iter(rows.values())) if c.startswith("latent_") and not c.endswith("_z"))
    targets: dict[str, np.ndarray] = {}
    for column in columns:
        try:
            values = np.array([float(rows[i][column]) for i in ids])
        except (ValueError, KeyError):
            continue
        if np.unique(values).size > 2:
            targets[("log " if column == "tumor_volume_ml" else "") + column] = np.log(values) if column == "tumor_volume_ml" else values
    targets["lnm (AUC)"] = np.array([int(float(rows[i]["lnm"])) for i in ids])
    result = {"cases": len(ids), "targets": list(targets), "scores": {}}
    if "oracle_lnm_probability" in rows[ids[0]]:
        oracle = np.array([float(rows[i]["oracle_lnm_probability"]) for i in ids])
        result["oracle_auc"] = float(roc_auc_score(targets["lnm (AUC)"], oracle))
    # reference points, no fitting: the AUC of the tumour volume and of the generator's latent imaging
    # predictor of LNM (what a perfect reading of the tumour's biology would give, without c_LNM)
    for label, column in (("tumour volume (no fit)", "tumor_volume_ml"), ("latent imaging LNM predictor (no fit)", "latent_lnm_linear_predictor")):
        if column in rows[ids[0]]:
            values = np.array([float(rows[i][column]) for i in ids])
            result["scores"][label] = {"lnm (AUC)": float(roc_auc_score(targets["lnm (AUC)"], values))}
    keep = {d.name: d for d in case_dirs if d.name in rows}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in encoders.items():
            trained = load_encoder(path)
            for label, encoder in ((f"{name} (trained)", trained), (f"{name} (untrained)", load_encoder(untrained_bundle(trained, Path(tmp))))):
                table = own_grid_features([keep[i] for i in ids], encoder, cache)
                x = np.stack([table[i] for i in ids])
                scores = probe_scores(x, targets)
                scores["feature sd (median)"] = float(np.median(x.std(axis=0)))
                scores["constant features"] = int((x.std(axis=0) < 1e-6).sum())
                result["scores"][label] = scores
                print(f"probe {label}: {scores}", file=sys.stderr, flush=True)
    return result


def write_report(path: Path, speed_result: dict | None, probe_result: dict | None, args) -> str:
    lines = ["# Deep-feature benchmark", "", f"Machine: {platform.processor() or platform.machine()}, "
             f"{__import__('os').cpu_count()} CPU cores (shared), Python {platform.python_version()}.", "",
             f"Command: `.venv/bin/python Testing/benchmarks/bench_deep.py {' '.join(sys.argv[1:])}`", ""]
    if speed_result:
        s = speed_result
        lines += ["## Speed per patient (default 2D + 3D encoders, all sequences on the T2WI grid)", "",
                  "| measure | value |", "|---|---|",
                  f"| patients | {s['cases']} ({s['sequences']:.1f} sequences each) |",
                  f"| deep features per patient, mean (2D + 3D) | {s['per_patient_mean']:.3f} s |",
                  f"| deep features per patient, max | {s['per_patient_max']:.3f} s |"]
        lines += [f"| of which {n} encoder, mean | {v:.3f} s |" for n, v in s["per_encoder_mean"].items()]
        lines += [f"| crop + preprocessing per sequence, mean | {1000 * s['preprocess_mean']:.1f} ms |",
                  f"| ONNX inference per sequence, mean | {1000 * s['inference_mean']:.1f} ms |"]
        lines += [f"| loading {n} (hashes, session, probe; once per process) | {v:.3f} s |" for n, v in s["load_s"].items()]
        lines += [f"| peak RSS of the benchmark process | {s['peak_rss_mb']:.0f} MB |", ""]
    if probe_result:
        p = probe_result
        targets = p["targets"]
        lines += ["## What the features carry (5-fold CV on held-out synthetic cases)", "",
                  f"{p['cases']} cases. Continuous targets: ridge R^2 from all features (standardised); lnm: logistic "
                  "AUC (standardised, L2 strength by inner 5-fold CV). Untrained = same network with random weights.", ""]
        if "oracle_auc" in p:
            lines += [f"Oracle AUC for lnm (generator's true probability): {p['oracle_auc']:.3f}", ""]
        header = ["features"] + targets + ["feature sd (median)", "constant features"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for label, scores in p["scores"].items():
            cells = [label] + [f"{scores[t]:.3f}" if t in scores else "" for t in targets]
            cells += [f"{scores['feature sd (median)']:.3f}" if "feature sd (median)" in scores else "",
                      str(scores.get("constant features", ""))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", required=True, type=Path, help="synthetic cohort folder (cohort.csv + case folders)")
    parser.add_argument("--speed-cases", type=int, default=10)
    parser.add_argument("--probe-cases", type=int, default=0)
    parser.add_argument("--encoder-2d", type=Path, default=None)
    parser.add_argument("--encoder-3d", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=None, help="folder to keep probe feature tables between runs")
    parser.add_argument("--out", type=Path, default=REPO / "Testing" / "benchmarks" / "results" / "deep.md")
    args = parser.parse_args()

    from CervicalAILib.bundles.defaults import default_bundle_path
    from CervicalAILib.io.case import is_case_folder

    encoders = {"2d": args.encoder_2d or default_bundle_path("encoder-2d"), "3d": args.encoder_3d or default_bundle_path("encoder-3d")}
    case_dirs = sorted(p for p in args.cohort.iterdir() if is_case_folder(p))
    speed_result = speed(case_dirs[: args.speed_cases], encoders) if args.speed_cases else None
    if speed_result:
        speed_result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    probe_result = probe(args.cohort, case_dirs[: args.probe_cases], encoders, args.cache) if args.probe_cases else None
    print(write_report(args.out, speed_result, probe_result, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
