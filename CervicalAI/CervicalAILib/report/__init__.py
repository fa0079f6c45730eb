"""The per-patient report (issue 8): one page a radiologist reads in a minute.

    from CervicalAILib.report import write_report
    write_report("readout_dir", "report.html", pdf_path="report.pdf")

Built from a readout folder (`readout.json` + `nomogram.png`, docs/readout.md): case pseudonym,
sequences used, key image (T2WI at the largest tumour slice with the contour, ADC and CE-T1WI
beside it), tumour volume and size class, the nomogram with the patient marked, the LNM
probability with the model's operating point, the stage-group readout, warnings, model cards in
brief and the research-use statement. HTML is self-contained; the PDF is drawn with matplotlib.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from CervicalAILib.contracts.readout import NOMOGRAM_IMAGE, READOUT_FILE
from CervicalAILib.core import atomic
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.output_guard import check_output_path
from CervicalAILib.report.content import ReportContent, build_content, load_readout, resolve_path
from CervicalAILib.report.render import default_pdf_path, render_html, render_pdf_bytes

__all__ = ["ReportContent", "ReportPaths", "build_content", "load_readout", "render_html", "render_pdf_bytes",
           "write_report"]


@dataclass
class ReportPaths:
    html: Path
    pdf: Path | None
    notes: list[str]


def write_report(readout_dir: str | Path, out_html: str | Path, pdf_path: str | Path | None = None,
                 overwrite: bool = False, deidentifier=None, patient_id: str | None = None) -> ReportPaths:
    """Write the HTML report (and the PDF when `pdf_path` is given), atomically, never over an
    existing file unless `overwrite`. With a `deidentifier` the report shows the patient's keyed
    pseudonym instead of the case id (`build_content`)."""
    out_html = Path(out_html)
    if out_html.suffix.lower() not in (".html", ".htm"):
        raise InputError("the report file name must end with .html", out_html)
    pdf = Path(pdf_path) if pdf_path is not None else None
    if pdf is not None and pdf.suffix.lower() != ".pdf":
        raise InputError("the PDF file name must end with .pdf", pdf)
    if pdf is not None and os.path.abspath(pdf) == os.path.abspath(out_html):
        raise InputError("the PDF and the HTML report cannot be the same file", pdf)
    inputs = report_inputs(readout_dir)
    for path, option in [(out_html, "--out")] + ([(pdf, "--pdf")] if pdf else []):
        check_output_path(path, inputs, overwrite=overwrite, kind="file", option=option)
    content = build_content(readout_dir, deidentifier=deidentifier, patient_id=patient_id)
    atomic.write_text(out_html, render_html(content))
    if pdf is not None:
        atomic.write_bytes(pdf, render_pdf_bytes(content))
    return ReportPaths(html=out_html, pdf=pdf, notes=content.notes)


def report_inputs(readout_dir: str | Path) -> list[Path]:
    """Every file the report reads: readout.json, the nomogram, the images and mask it references."""
    folder, readout = load_readout(readout_dir)
    inputs = [folder / READOUT_FILE]
    inputs.append(folder / ((readout.nomogram.image if readout.nomogram is not None else None) or NOMOGRAM_IMAGE))
    entries = [*(readout.inputs.images or {}).values(), readout.inputs.mask]
    for entry in entries:
        path = resolve_path(folder, entry.path) if entry is not None else None
        if path is not None:
            inputs.append(path)
    return inputs


__all__ += ["default_pdf_path"]
