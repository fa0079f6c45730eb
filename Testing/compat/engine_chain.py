"""The engine end to end as the three Slicer modules call it, on one synthetic study.

    python Testing/compat/engine_chain.py make-inputs OUT     # main environment: DICOM study + reader values
    python Testing/compat/engine_chain.py run INPUTS WORK     # any environment: the chain, summary on stdout

`run` does what the modules do, with their own Lib functions and the background runner:

1. hub "Load study from folder": `study register` of the DICOM study (CervicalAIHubLib.workflow);
2. Segment "Apply": the loaded volumes exported as a case folder (uncompressed), then the steps of
   CervicalAISegmentLib.pipeline.segmentation_job (co-registration, segmentation) in the background;
3. Segment "Mark as reviewed": the automatic contour accepted unchanged (engine review record);
4. Predict "Compute": the reviewed mask with its record and the reader's clinical values
   (CervicalAIPredictLib.form), `predict` on the native DICOM study with the loaded folder's transforms;
5. Predict "Save report": the readout saved (save_report) and `report --pdf` on it;
6. export of the reviewed mask: `export seg-nrrd` and `export nifti` (and `export dicom-seg` when
   this Python has highdicom, as Slicer 5.12+ does).

The summary (JSON) holds the readout's figures and what each step wrote, for comparison between
environments. Every step runs `python -m CervicalAILib.cli` in a child process with the engine's
environment, as PythonSlicer would; a failing step stops the chain with its error message.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for _folder in ("CervicalAI", "CervicalAISegment", "CervicalAIPredict"):
    if str(REPO / _folder) not in sys.path:
        sys.path.insert(0, str(REPO / _folder))

CASE_SEED = 20260   # generator seed of the chain's patient (not one the shipped models were trained on)
CASE_INDEX = 1
# The chain compares environments to 1e-6, so its patient must register to one optimum in every
# SimpleITK build. Generator 2.0's CE-T1WI does not yet: its rigid registration to the T2WI took 35
# iterations with SimpleITK 2.5.7 and 73 with 2.5.5 and ended up to 0.6 mm apart (issue 13 follow-up).
CHAIN_GENERATOR = "1.1.0"
READER_FIELDS = ("age", "figo_stage", "histology", "scc_ag", "ln_short_axis_mm", "ln_long_axis_mm", "ln_necrosis",
                 "confined_to_cervix")  # fmt: skip
STEP_TIMEOUT = 600


def make_inputs(out: Path) -> None:
    """The synthetic patient as a DICOM study and the reader's form texts (in the main environment)."""
    from CervicalAILib.research.synth import SynthParams, generate_case
    from CervicalAILib.research.synth.dicom import write_case_dicom

    case = generate_case(CASE_INDEX, seed=CASE_SEED, params=SynthParams(generator_version=CHAIN_GENERATOR))
    out.mkdir(parents=True, exist_ok=False)
    write_case_dicom(case, out / "dicom", CASE_SEED)
    texts = {name: _form_text(case.clinical[name]) for name in READER_FIELDS if case.clinical.get(name) is not None}
    (out / "reader.json").write_text(json.dumps({"case_id": case.case_id, "form": texts}, indent=1))


def _form_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _run_steps(steps, env) -> float:
    from CervicalAILib.core.background import BackgroundRun

    run = BackgroundRun(steps, env=env).start()
    state = run.wait(timeout=STEP_TIMEOUT)
    if state.status != "succeeded":
        run.cancel()
        raise SystemExit(f"engine chain: {steps[run.step].label or 'step'} {state.status}: {run.error_message()}")
    return round(run.seconds, 2)


def run_chain(inputs: Path, work: Path) -> dict:
    import SimpleITK as sitk

    from CervicalAIHubLib.workflow import case_volume_files, study_load_step
    from CervicalAILib.contracts.case_folder import read_manifest
    from CervicalAILib.contracts.review import record_path
    from CervicalAILib.contracts.segmentation import MASK_FILE, SEGMENTATION_SUMMARY
    from CervicalAILib.core.background import engine_command, engine_environment
    from CervicalAILib.io.images import write_image
    from CervicalAILib.review import record as engine_review
    from CervicalAIPredictLib.form import values_from_form, write_clinical_json
    from CervicalAIPredictLib.readout import predict_step, read_readout, report_step, save_report
    from CervicalAISegmentLib.pipeline import segmentation_job

    python = sys.executable
    env = engine_environment()
    reader = json.loads((inputs / "reader.json").read_text())
    work.mkdir(parents=True, exist_ok=False)
    seconds: dict[str, float] = {}

    # 1. hub: load the DICOM study (roles recognised, sequences co-registered)
    loaded = work / "loaded"
    seconds["load"] = _run_steps([study_load_step(python, inputs / "dicom", loaded)], env)
    volumes = case_volume_files(loaded)

    # 2. Segment: the loaded volumes exported as the run's input (as export_case_folder(compress=False))
    (work / "apply" / "input").mkdir(parents=True)
    for role, path in volumes.items():
        sitk.WriteImage(sitk.ReadImage(str(path)), str(work / "apply" / "input" / f"{role}.nii"), False)
    job = segmentation_job(python, work / "apply", "cpu")
    seconds["segment"] = _run_steps(job.steps, env)
    summary = json.loads((job.result / SEGMENTATION_SUMMARY).read_text())

    # 3. Segment: "Mark as reviewed" on the automatic contour, unchanged
    automatic = sitk.ReadImage(str(job.result / MASK_FILE))
    review_dir = work / "review"
    write_image(automatic, review_dir / MASK_FILE)
    record = engine_review.mark_reviewed(review_dir / MASK_FILE, "Compat Reader", automatic,
                                         (summary.get("model") or {}).get("label"))  # fmt: skip

    # 4. Predict: inputs as prepare_inputs writes them, then `predict` with the run's registration
    predict_in = work / "predict"
    (predict_in / "mask").mkdir(parents=True)
    shutil.copyfile(review_dir / MASK_FILE, predict_in / "mask" / MASK_FILE)
    shutil.copyfile(record_path(review_dir / MASK_FILE), record_path(predict_in / "mask" / MASK_FILE))
    shutil.copyfile(job.result / SEGMENTATION_SUMMARY, predict_in / "mask" / SEGMENTATION_SUMMARY)
    clinical = write_clinical_json(predict_in / "clinical.json", values_from_form(reader["form"]))
    readout_dir = predict_in / "readout"
    # the loaded volumes are on the T2WI grid and unchanged: the readout takes the native study the loaded
    # folder was made from, with its transforms (as CervicalAIHubLib.volumes.readout_folders decides)
    native = read_manifest(loaded).native_source
    step = predict_step(python, native, predict_in / "mask" / MASK_FILE, clinical, readout_dir, transforms=loaded,
                        device="cpu")
    seconds["predict"] = _run_steps([step], env)
    readout = read_readout(readout_dir).to_dict()

    # 5. Predict: "Save report"
    saved = save_report(readout_dir, work / "saved-readout")
    seconds["report"] = _run_steps([report_step(python, saved)], env)

    # 6. export of the reviewed mask
    exports = work / "export"
    exports.mkdir()
    commands = [
        (["export", "seg-nrrd", "--mask", predict_in / "mask" / MASK_FILE, "--reference", job.case / volumes["T2W"].name,
          "--out", exports / "tumor.seg.nrrd", "--reviewed-only"], "seg.nrrd"),
        (["export", "nifti", "--mask", predict_in / "mask" / MASK_FILE, "--reference", job.case / volumes["T2W"].name,
          "--out", exports / "tumor.nii.gz"], "nifti"),
    ]  # fmt: skip
    if importlib.util.find_spec("highdicom") is not None:
        t2_series = _t2_series_folder(inputs / "dicom")
        commands.append((["export", "dicom-seg", "--mask", predict_in / "mask" / MASK_FILE, "--reference-dicom", t2_series,
                          "--out", exports / "seg.dcm"], "dicom-seg"))  # fmt: skip
    from CervicalAILib.core.background import Step

    started = time.perf_counter()
    _run_steps([Step(engine_command(python, *arguments), f"export {label}") for arguments, label in commands], env)
    seconds["export"] = round(time.perf_counter() - started, 2)

    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "packages": _versions(("numpy", "scipy", "pydicom", "SimpleITK", "onnxruntime", "pyradiomics-bhklab", "highdicom")),
        "segmentation": {key: summary.get(key) for key in ("volume_ml", "max_diameter_mm", "confidence", "tumor_found")},
        "review": {"origin": record.origin, "dice": record.edit_metrics.dice if record.edit_metrics else None},
        "readout": _figures(readout),
        "report": sorted(path.name for path in saved.iterdir() if path.name.startswith("report")),
        "exports": sorted(path.name for path in exports.iterdir()),
        "seconds": seconds,
    }


def _t2_series_folder(dicom: Path) -> Path:
    from CervicalAILib.study.load import load_study

    study = load_study(dicom)
    t2 = next(series for series in study.series if series.role == "T2W")
    return Path(t2.path) if Path(t2.path).is_dir() else Path(t2.path).parent


def _versions(names) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _figures(readout: dict) -> dict:
    """The numbers a radiologist reads, and every feature value behind them."""
    nomogram = readout.get("nomogram") or {}
    predicted = (readout.get("staging") or {}).get("predicted") or {}
    features = readout.get("features") or {}
    return {
        "lnm_probability": readout.get("lnm_probability"),
        "rad_score": readout.get("rad_score"),
        "dl_score": readout.get("dl_score"),
        "total_points": nomogram.get("total_points"),
        "stage_group_probability": predicted.get("stage_group_chemoradiotherapy_probability"),
        "stage_group": predicted.get("stage_group"),
        "volume_ml": (readout.get("segmentation") or {}).get("volume_ml"),
        "radiomics": features.get("radiomics") or {},
        "deep": features.get("deep") or {},
        "warnings": readout.get("warnings") or [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-inputs")
    make.add_argument("out", type=Path)
    run = sub.add_parser("run")
    run.add_argument("inputs", type=Path)
    run.add_argument("work", type=Path)
    args = parser.parse_args(argv)
    if args.command == "make-inputs":
        make_inputs(args.out)
        return 0
    print(json.dumps(run_chain(args.inputs, args.work), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
