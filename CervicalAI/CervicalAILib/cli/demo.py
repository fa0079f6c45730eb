"""`cervicalai demo` (what `make demo` runs): one synthetic patient through the whole pipeline.

synthetic patient -> study inspection -> co-registration -> automatic segmentation (compared with
the generator's ground truth) -> reader's clinical values -> readout (LNM risk, scores, nomogram,
staging) -> report. Every stage uses the shipped default bundles; a stage whose bundle is
missing is reported as not run, with the reason, and the later stages that need it are skipped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import SimpleITK as sitk

from CervicalAILib import RESEARCH_USE_STATEMENT
from CervicalAILib.contracts.readout import Readout
from CervicalAILib.contracts.readout_text import summary_text
from CervicalAILib.contracts.segmentation import SEGMENTATION_SUMMARY
from CervicalAILib.core.atomic import write_json
from CervicalAILib.core.errors import BundleError, OutputExistsError
from CervicalAILib.core.output_guard import refuse_reviewed
from CervicalAILib.core.progress import no_progress
from CervicalAILib.io import measurements as measure
from CervicalAILib.pipeline import load_inputs, predict_case
from CervicalAILib.pipeline.segment import segment_patient, write_patient_segmentation
from CervicalAILib.registration import register_study_to_case
from CervicalAILib.report import write_report
from CervicalAILib.research.synth import SynthParams, generate_case
from CervicalAILib.research.synth.writer import write_case_folder
from CervicalAILib.study.load import load_study

DEMO_MARKER = ".cervicalai-demo"
DEMO_SEED = 424242  # a generator seed never used for training the shipped models
READER_FIELDS = ("age", "figo_stage", "histology", "scc_ag", "ln_short_axis_mm", "ln_long_axis_mm", "ln_necrosis", "center")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="demo folder (default: demo-output)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="generator seed of the demo patient")
    parser.add_argument("--case-index", type=int, default=0, help="which patient of that seed")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--pdf", action="store_true", help="also write the report as PDF")


def _prepare_folder(out: Path) -> None:
    """The demo replaces only its own earlier output (marked), never a folder a user made."""
    import shutil

    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder; choose another --out")
    if out.exists() and any(out.iterdir()):
        if not (out / DEMO_MARKER).is_file():
            raise OutputExistsError(f"{out}: exists and was not made by the demo; choose another --out")
        refuse_reviewed(out)  # a contour reviewed in the demo's folder is the reader's work: never deleted
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / DEMO_MARKER).write_text("made by cervicalai demo; replaced by the next demo run\n")


def _tumour_centre(label_path: Path) -> tuple[float, float, float]:
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.ReadImage(str(label_path)) > 0)
    return stats.GetCentroid(1)


def _true_transform(motion: dict):
    """The generator's true patient motion (T2WI -> series) as a SimpleITK transform."""
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in motion["matrix"]])
    transform.SetCenter([float(v) for v in motion["center_mm"]])
    transform.SetTranslation([float(v) for v in motion["translation_mm"]])
    return transform


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run(args: argparse.Namespace) -> int:
    import json

    out = args.out
    _prepare_folder(out)
    print(f"CervicalAI demo - {RESEARCH_USE_STATEMENT}")

    started = _step("1. synthetic patient (generator ground truth known)")
    case = generate_case(args.case_index, seed=args.seed, params=SynthParams())
    case_dir = write_case_folder(case, out / "case", seed=args.seed)
    truth = case.clinical
    print(f"   {truth['case_id']}: FIGO {truth['figo_stage']} {truth['histology']}, tumour {truth['tumor_max_diameter_mm']:.0f} mm, "
          f"largest node short axis {truth['ln_short_axis_mm']:.1f} mm; pathology LNM = {truth['lnm']} "
          f"(generator oracle probability {case.latent.get('oracle_lnm_probability', float('nan')):.2f})")
    print(f"   written to {case_dir} ({time.perf_counter() - started:.1f} s)")

    started = _step("2. study inspection")
    study = load_study(case_dir)
    for series in study.series:
        print(f"   {series.role:5s} {series.orientation:8s} size {tuple(series.size)} spacing "
              f"{tuple(round(s, 2) for s in series.spacing)} mm")
    print(f"   ({time.perf_counter() - started:.1f} s)")

    started = _step("3. co-registration of ADC, DWI and CE-T1WI onto the T2WI")
    registered = register_study_to_case(study, out / "registered", progress=no_progress)
    registration = json.loads((registered / "registration.json").read_text())
    centre = _tumour_centre(case_dir / "labels" / "tumor.nii.gz")
    for role, record in registration["sequences"].items():
        found = sitk.ReadTransform(str(registered / "transforms" / f"{role}.tfm"))
        true = _true_transform(case.truth["series"][role]["motion_from_t2"])
        error = sum((a - b) ** 2 for a, b in zip(found.TransformPoint(centre), true.TransformPoint(centre))) ** 0.5
        print(f"   {role}: found shift {record['translation_norm_mm']:.1f} mm, rotation {record['rotation_angle_deg']:.1f} deg; "
              f"error against the generator's true motion at the tumour: {error:.2f} mm")
    print(f"   ({time.perf_counter() - started:.1f} s)")

    started = _step("4. automatic tumour segmentation")
    segmentation_dir = out / "segmentation"
    mask_path = None
    try:
        # the registered folder, as `cervicalai segment` would run on it: its stored transforms are used, and
        # segmentation.json names the native sequences they move (what predict checks the mask against)
        segmentation = segment_patient(registered, device=args.device)
        write_patient_segmentation(segmentation, segmentation_dir)
        result = segmentation.result
        summary = json.loads((segmentation_dir / SEGMENTATION_SUMMARY).read_text())
        if result.mask is None:  # the anatomy gate recognised no cervix or uterus
            raise BundleError(f"{summary['message']}: no tumour contour (model {summary['model']['label']})")
        mask_path = segmentation_dir / "tumor.nii.gz"
        truth_mask = sitk.ReadImage(str(case_dir / "labels" / "tumor.nii.gz"))
        automatic = sitk.ReadImage(str(mask_path))
        print(f"   model {summary['model']['label']} on {summary['device']['provider']}: "
              f"{summary['volume_ml']:.1f} mL, max diameter {summary['max_diameter_mm']:.1f} mm, confidence {summary['confidence']:.2f}")
        if summary["tumor_found"]:
            print(f"   against the ground truth: Dice {measure.dice(automatic, truth_mask):.3f}, "
                  f"HD95 {measure.hausdorff95_mm(automatic, truth_mask):.1f} mm")
        if summary["flagged_slices"]:
            print("   T2WI slices to check first (numbered from 1, as in Slicer): "
                  + ", ".join(str(s["slice"] + 1) for s in summary["flagged_slices"]))
    except BundleError as exc:
        print(f"   not run: {exc}")
    print(f"   ({time.perf_counter() - started:.1f} s)")

    started = _step("5. readout: radiomics, deep features, Rad_score, DL_score, DLRC nomogram, staging")
    readout_dir = out / "readout"
    readout = None
    if mask_path is None:
        print("   not run: no automatic segmentation")
    else:
        clinical = {k: truth[k] for k in READER_FIELDS if k in truth}  # what a reader enters; never the pathology truth
        clinical["confined_to_cervix"] = truth["figo_stage"] in ("IA1", "IA2", "IB1", "IB2", "IB3")
        write_json(out / "clinical.json", clinical)
        try:
            inputs = load_inputs(case_dir, mask_path, clinical, transforms_dir=registered)
            readout = predict_case(inputs, out_dir=readout_dir, device=args.device)
            print(summary_text(Readout.from_dict(readout)))
        except BundleError as exc:
            print(f"   not run: {exc}")
    print(f"   ({time.perf_counter() - started:.1f} s)")

    started = _step("6. report")
    if readout is None:
        print("   not run: no readout")
    else:
        paths = write_report(readout_dir, out / "report.html", pdf_path=(out / "report.pdf") if args.pdf else None)
        print(f"   ({time.perf_counter() - started:.1f} s)")
        print(f"\nReport: {paths.html.resolve()}")
        if paths.pdf:
            print(f"PDF:    {paths.pdf.resolve()}")
    return 0
