"""`cervicalai synth`: generate a synthetic multi-parametric pelvic MRI cohort with ground truth."""

from __future__ import annotations

import argparse
import sys

from CervicalAILib.core.errors import InputError
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress
from CervicalAILib.research.synth import GENERATOR_VERSION, SynthParams, generate_cohort
from CervicalAILib.research.synth.figure import case_figure
from CervicalAILib.research.synth.params import T2_ORIENTATIONS

EPILOG = """\
Each case folder holds T2W, DWI (b=800 or 1000), ADC (integers in 1e-6 mm2/s) and CE-T1
images on their own acquisition grids (and a sagittal T2WI, T2W_SAG.nii.gz), tumour labels on
every grid, organ labels (labels/organs.nii.gz with labels/organs.json) and lymph-node labels
on the T2W grid, clinical.json (age, FIGO stage, histology, node size, c_LNM, SRA, SCC-Ag,
pathological LNM, stage group) and generator_truth.json (latent biology, true inter-series
motion). cohort.csv lists every case with the oracle LNM probability; generator.json records
every parameter. The same seed gives the same bytes, whatever --jobs. Generator 2 renders MR
physics; --generator-version 1.1.0 reproduces cohorts of the 1.x generator.

examples:
  cervicalai synth --cases 20 --seed 1 --out cohort
  cervicalai synth --cases 1100 --seed 4 --centers 5 --jobs 2 --out study
  cervicalai synth --cases 60 --seed 9002 --centers 5 --t2-orientation axial --out axial   # the same patients, axial T2WI
  cervicalai synth --cases 3 --seed 1 --format dicom --out dicom_cohort
  cervicalai synth --figure cohort/SYN1-A-0001 --out case.png
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--cases", type=int, metavar="N", help="number of patients to generate")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (with --figure: the PNG file to write)")
    parser.add_argument("--centers", type=int, default=1, metavar="K",
                        help="number of centres (scanners/protocols); case shares follow seed 004 (default 1)")
    parser.add_argument("--format", choices=("nifti", "dicom"), default="nifti",
                        help="images as NIfTI case folders or as one DICOM study per patient (default nifti)")
    parser.add_argument("--jobs", type=int, default=1, metavar="J", help="worker processes (default 1)")
    parser.add_argument("--stage-range", choices=("early", "full"), default="early",
                        help="early: FIGO IB1-IIA2 as in seed 004 (default); full: IA1-IVB as in seed 000")
    parser.add_argument("--matrix-scale", type=float, default=1.0, metavar="F",
                        help="scale every in-plane matrix (e.g. 0.5 for quick previews; default 1)")
    parser.add_argument("--generator-version", default=None, metavar="V",
                        help="generator version to render with (default: the current one; 1.1.0 reproduces 1.x cohorts)")
    parser.add_argument("--no-sagittal", action="store_true", help="do not acquire the sagittal T2WI (generator 2)")
    parser.add_argument("--t2-orientation", choices=T2_ORIENTATIONS, default="site",
                        help="T2WI plane: each centre's protocol (default; centres A-E plan it oblique axial, "
                             "F-K axial), or one plane for every case (generator 2)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    parser.add_argument("--figure", metavar="CASE_DIR",
                        help="instead of generating: draw one case's four sequences at the largest tumour "
                             "slice with the tumour contour, into the PNG given by --out")


def run(args: argparse.Namespace) -> int:
    check_output_path(args.out, [args.figure], overwrite=args.overwrite, kind="file" if args.figure else "folder")
    if args.figure:
        path = case_figure(args.figure, args.out, overwrite=args.overwrite)
        print(path)
        return 0
    if args.cases is None:
        raise InputError("--cases N is required (number of patients to generate)")
    params = SynthParams(stage_range=args.stage_range, matrix_scale=args.matrix_scale,
                         generator_version=args.generator_version or GENERATOR_VERSION, sagittal_t2=not args.no_sagittal,
                         t2_orientation=args.t2_orientation)
    result = generate_cohort(args.out, args.cases, args.seed, centers=args.centers, fmt=args.format,
                             jobs=args.jobs, params=params, progress=line_progress, overwrite=args.overwrite)
    print(f"wrote {result.n_cases} case(s) to {result.path} in {result.seconds:.1f} s", file=sys.stderr)
    print(result.path)
    return 0
