"""`cervicalai study inspect|register`: what is in a study, and co-registration onto the T2WI grid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from CervicalAILib.cli.options import output_path
from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.core.progress import line_progress, sub_progress
from CervicalAILib.registration import register_study_to_case
from CervicalAILib.study.load import load_study, require_role
from CervicalAILib.study.series import normalise_role

ROLE_HELP = (
    "give a series a role by hand, e.g. --role 8=DWI or --role 5=other (repeatable). SERIES is the "
    "series number shown by 'inspect' (or its SeriesInstanceUID, or an image file name); ROLE is "
    "T2W, DWI, ADC, CET1 or other"
)
STUDY_HELP = (
    "when the folder holds several patients or studies, load only this one "
    "(PatientID, StudyInstanceUID or AccessionNumber)"
)
PATH_HELP = (
    "a DICOM folder (searched at any depth; file names do not matter), a case folder "
    "(T2W.nii.gz, DWI.nii.gz, ADC.nii.gz, CET1.nii.gz), or image files (NIfTI, NRRD, MHA)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Sequence roles are recognised from the DICOM tags (series description, sequence, b-values,\n"
        "image type, contrast agent, echo/repetition times), never from file names:\n"
        "  T2W   T2-weighted image (axial preferred)        DWI   high b-value diffusion image\n"
        "  ADC   apparent diffusion coefficient map          CET1  contrast-enhanced T1-weighted image\n"
        "Check them with 'inspect' before running the pipeline; correct them with --role."
    )
    commands = parser.add_subparsers(dest="study_command", metavar="SUBCOMMAND", required=True)

    inspect = commands.add_parser(
        "inspect",
        help="list the series of a study with their roles, geometry, b-values and problems",
        description="List every series of a study: the role it was given (T2W, DWI, ADC, CET1 or "
        "other) and why, size, voxel spacing, orientation, b-values, number of files, and any "
        "problem found (missing slices, unreadable files, ...).",
    )
    inspect.add_argument("path", nargs="+", type=Path, metavar="PATH", help=PATH_HELP)
    inspect.add_argument("--json", action="store_true", help="print the result as JSON (for scripts and Slicer)")
    inspect.add_argument("--role", action="append", default=[], metavar="SERIES=ROLE", help=ROLE_HELP)
    inspect.add_argument("--study", metavar="ID", help=STUDY_HELP)

    register = commands.add_parser(
        "register",
        help="co-register DWI, ADC and CE-T1WI onto the T2WI grid and write a case folder",
        description="Load a study, co-register its DWI, ADC and CE-T1WI onto the T2-weighted image "
        "(rigid, mutual information, starting from the scanner geometry) and write them, resampled on "
        "the T2WI grid, as a case folder with the transforms used, for review and for the pipeline.",
    )
    register.add_argument("path", nargs="+", type=Path, metavar="PATH", help=PATH_HELP)
    register.add_argument("--out", required=True, type=output_path, metavar="DIR", help="case folder to write")
    register.add_argument("--overwrite", action="store_true", help="replace DIR if it exists (never done otherwise)")
    register.add_argument("--role", action="append", default=[], metavar="SERIES=ROLE", help=ROLE_HELP)
    register.add_argument("--study", metavar="ID", help=STUDY_HELP)


def parse_role_overrides(values: list[str]) -> dict[str, str]:
    """['8=DWI', '5=other'] -> {'8': 'DWI', '5': 'other'}; InputError for a malformed value."""
    overrides: dict[str, str] = {}
    for value in values:
        series, sep, role = value.rpartition("=")
        if not sep or not series.strip() or not role.strip():
            raise InputError(f"--role expects SERIES=ROLE (e.g. 8=DWI), got '{value}'")
        if series.strip() in overrides:
            raise InputError(f"--role names series {series.strip()} twice")
        overrides[series.strip()] = normalise_role(role)
    return overrides


def _load(args: argparse.Namespace, progress=None):
    path = args.path[0] if len(args.path) == 1 else args.path
    return load_study(path, parse_role_overrides(args.role), progress=progress, study=args.study)


def _format_number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def format_study(study) -> str:
    """The readable table `inspect` prints."""
    lines = []
    where = {"dicom": "DICOM folder", "case": "case folder", "files": "image files"}[study.source]
    header = f"Study: {study.path} ({where}"
    if study.patient_id:
        header += f"; patient {study.patient_id}"
    if study.study_date:
        date = study.study_date
        header += f"; {date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 else f"; {date}"
    if study.study_description:
        header += f"; {study.study_description}"
    lines.append(header + ")")
    roles = []
    for role in ("T2W", "DWI", "ADC", "CET1"):
        series = study.series_for(role)
        if series is None:
            roles.append(f"{role} = none")
        else:
            extra = f", b={_format_number(series.b_value)}" if role == "DWI" and series.b_value is not None else ""
            roles.append(f"{role} = {series.key}{extra}")
    lines.append("Roles: " + "   ".join(roles))
    lines.append("")
    rows = [("series", "role", "looks like", "orientation", "size", "spacing mm", "b-values", "files", "description")]
    for s in study.series:
        role = s.role if s.role != "other" else "-"
        if s.role_source == "override":
            role += " (set)"
        kind = s.kind + (" (calculated)" if s.is_calculated else "")
        if not s.usable:
            kind += " [unusable]"
        size = "x".join(str(n) for n in s.size) if s.size else "-"
        spacing = "x".join(_format_number(v) for v in s.spacing) if s.spacing else "-"
        b_values = "/".join(_format_number(b) for b in s.b_values) or "-"
        if s.kind == "ADC" and s.b_values:
            b_values = f"from {b_values}"
        rows.append((s.key, role, kind, s.orientation, size, spacing, b_values, str(s.n_files), s.description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    reasons = [f"  {s.key}: {s.reason}" for s in study.series if s.reason]
    if reasons:
        lines += ["", "Why:"] + reasons
    if study.problems:
        lines += ["", "Problems:"] + [f"  - {p}" for p in study.problems]
    notes = list(study.notes) + [f"series {s.key}: {n}" for s in study.series for n in s.notes]
    if notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in notes]
    return "\n".join(lines)


def run_inspect(args: argparse.Namespace) -> int:
    study = _load(args)
    if args.json:
        sys.stdout.write(to_json(study.to_dict()))
    else:
        print(format_study(study))
    return 0


# Everything `study register` writes into its case folder (glob patterns): --overwrite replaces only these.
REGISTER_OUTPUT_FILES = ["T2W.nii.gz", "ADC.nii.gz", "DWI.nii.gz", "CET1.nii.gz", "labels/*.nii.gz", "clinical.json",
                         "registration.json", "case.json", "transforms/*.tfm"]


def run_register(args: argparse.Namespace) -> int:
    out = check_output_path(args.out, args.path, overwrite=args.overwrite, owned=REGISTER_OUTPUT_FILES)
    study = _load(args, progress=sub_progress(line_progress, 0.0, 0.1))
    require_role(study, "T2W", "the T2WI grid is the reference for co-registration")
    for role in study.roles_present():
        study.image(role)  # refuse a blank or broken sequence here, naming its file, not inside the registration
    register_study_to_case(study, out, overwrite=args.overwrite, progress=sub_progress(line_progress, 0.1, 1.0))
    used = ", ".join(f"{role} <- series {study.series_for(role).key}" for role in study.roles_present())
    print(f"case folder written: {out} ({used})")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.study_command == "inspect":
        return run_inspect(args)
    return run_register(args)
