"""The background commands of "Apply": co-registration, then segmentation.

    <work>/input/      the selected volumes as a case folder (each on its own grid)
    <work>/case/       `cervicalai study register`: DWI/ADC/CE-T1WI co-registered onto the T2WI grid
    <work>/segmentation/  `cervicalai segment`: tumor.nii.gz, tumor_probability.nii.gz, segmentation.json

The co-registered case folder is kept: the Predict module computes the readout from it. The work folder
is made by CervicalAIHubLib.runner.new_work_folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from CervicalAILib.core.background import Step, engine_command
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import ROLES, find_role_file

DEVICES = ("cpu", "gpu")


@dataclass
class SegmentationJob:
    """Folders of one Apply and the steps that fill them."""

    work: Path
    input_case: Path
    case: Path
    result: Path
    steps: list[Step]


def segmentation_job(
    python: str | os.PathLike,
    work: str | os.PathLike,
    device: str = "cpu",
    model: str | os.PathLike | None = None,
    nnunet_model: str | os.PathLike | None = None,
) -> SegmentationJob:
    """Steps for a case folder already exported to `<work>/input` (see module doc).

    `nnunet_model`: a site's own nnU-Net model folder (the hub setting), run instead of a bundle.

    With the T2WI alone there is nothing to co-register: `segment` reads the input directly.
    """
    if device not in DEVICES:
        raise InputError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    work = Path(work)
    input_case = work / "input"
    if find_role_file(input_case, "T2W") is None:
        raise InputError("no T2W image in the exported case folder", input_case)
    others = [role for role in ROLES if role != "T2W" and find_role_file(input_case, role) is not None]
    case = work / "case" if others else input_case
    result = work / "segmentation"
    steps = []
    if others:
        steps.append(
            Step(
                engine_command(python, "study", "register", input_case, "--out", case),
                f"co-registering {', '.join(others)} onto the T2WI",
                weight=1.0,
            )
        )
    segment = ["segment", case, "--out", result, "--device", device]
    if model:
        segment += ["--model", Path(model)]
    if nnunet_model:
        segment += ["--nnunet-model", Path(nnunet_model)]
    steps.append(Step(engine_command(python, *segment), "segmenting the tumour", weight=2.0))
    return SegmentationJob(work, input_case, case, result, steps)
