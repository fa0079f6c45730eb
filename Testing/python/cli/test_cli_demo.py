"""`cervicalai demo` (what `make demo` runs): one synthetic patient through the whole chain."""

from __future__ import annotations

import json
import re

import pytest
import SimpleITK as sitk

from CervicalAILib.cli import main
from CervicalAILib.io import measurements as measure


@pytest.mark.slow
def test_the_demo_runs_the_chain_and_its_figures_match_its_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # the Dice it prints is the Dice of the files it wrote
    automatic = sitk.ReadImage(str(out / "segmentation" / "tumor.nii.gz"))
    truth_mask = next(out.glob("*/labels/tumor.nii.gz"))
    dice = measure.dice(automatic, sitk.ReadImage(str(truth_mask)))
    assert f"against the ground truth: Dice {dice:.3f}" in printed
    assert dice > 0.5  # the shipped network finds the demo patient's tumour
    readout = json.loads((out / "readout" / "readout.json").read_text())
    assert f"  LNM risk (DLRC): {100 * readout['lnm']['probability']:.1f}%" in printed
    # the mask carries the case it was made on: predict could check it belongs to this patient
    assert not any("no record of the case" in warning for warning in readout["warnings"])
    assert (out / "report.html").is_file() and re.search(r"Report: .*report\.html", printed)
