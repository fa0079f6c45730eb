"""Rendering the per-patient report: one self-contained HTML page and a one-page PDF (matplotlib).

HTML: images inline as PNG data URIs, CSS inline, no script, no outside reference, so the file
can be attached to a patient record or mailed as it is. PDF: an A4 page drawn with matplotlib's
PDF backend (the same content; no extra dependency).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from CervicalAILib import RESEARCH_USE_STATEMENT, __version__
from CervicalAILib.report.content import ReportContent

CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1000px; color: #1a1a1a; }
h1 { font-size: 20px; margin: 0 0 4px 0; } h2 { font-size: 15px; margin: 18px 0 6px 0; border-bottom: 1px solid #ccc; }
.sub { color: #555; font-size: 12px; } table { border-collapse: collapse; font-size: 13px; }
td { padding: 3px 12px 3px 0; vertical-align: top; } td.k { color: #555; white-space: nowrap; }
.risk { font-size: 18px; font-weight: bold; } img { max-width: 100%; }
.warn { background: #fff4e5; border-left: 4px solid #f0a020; padding: 6px 10px; font-size: 13px; }
.statement { background: #eef3fb; border-left: 4px solid #3a6fc4; padding: 6px 10px; font-size: 13px; }
.cols { display: flex; gap: 24px; flex-wrap: wrap; } .cols > div { flex: 1 1 300px; }
"""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><td class='k'>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in pairs)


def _items(lines: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>" if lines else "<p>none</p>"


def statements(content: ReportContent) -> list[str]:
    """The readout's statement, and the engine's research-use statement when the readout's differs."""
    lines = [content.statement]
    if content.statement.strip() != RESEARCH_USE_STATEMENT:
        lines.append(RESEARCH_USE_STATEMENT)
    return lines


def render_html(content: ReportContent) -> str:
    """The report as one self-contained HTML document."""
    key_image = (f"<img alt='key image: T2WI with tumour contour, ADC and CE-T1WI' src='{_data_uri(content.key_image_png)}'>"
                 if content.key_image_png else "<p>Key image not available.</p>")
    nomogram = (f"<img alt='DLRC nomogram with the patient marked' src='{_data_uri(content.nomogram_png)}'>"
                if content.nomogram_png else "<p>Nomogram not available.</p>")
    warnings = content.warnings + content.notes
    warning_block = f"<div class='warn'>{_items(warnings)}</div>" if warnings else "<p>none</p>"
    risk = ": ".join(content.lnm[0]) if content.lnm else ""  # the risk sentence (contracts/readout_text.lnm_line)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CervicalAI report {html.escape(content.case)}</title>
<style>{CSS}</style></head><body>
<h1>CervicalAI per-patient readout: {html.escape(content.case_label)} {html.escape(content.case)}</h1>
<div class="sub">Readout created {html.escape(content.created)}; report by cervicalai {__version__}</div>
<div class="statement">{"<br>".join(html.escape(s) for s in statements(content))}</div>
<h2>Key image (largest tumour slice)</h2>
{key_image}
<div class="cols"><div>
<h2>Tumour</h2><table>{_rows(content.facts)}</table>
</div><div>
<h2>Lymph-node metastasis risk</h2><p class="risk">{html.escape(risk)}</p>
<table>{_rows(content.lnm[1:])}</table>
</div></div>
<h2>Nomogram (patient marked)</h2>
{nomogram}
<h2>Stage-group readout</h2>{_items(content.staging)}
<h2>For the reader to confirm</h2>{_items(content.needs_reader)}
<h2>Warnings</h2>{warning_block}
<h2>Models</h2><table>{_rows(content.models) or "<tr><td>not recorded in the readout</td></tr>"}</table>
</body></html>
"""


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in text.splitlines() or [""])


# PDF layout below the nomogram, in figure fractions of the A4 page (11.69 in = 842 pt)
SECTIONS_TOP = 0.315
SECTION_HEAD = 0.03  # a section title and the gap before the next one
BODY_LINE = 0.0112  # one 7.5 pt body line (matplotlib's line spacing 1.2 = 9 pt)
PAGE_BOTTOM = 0.035  # kept free at the foot of the page (about 10 mm)
BODY_WIDTH = 125  # characters per body line at 7.5 pt across the page


def fit_sections(sections: list[tuple[str, list[str]]], top: float = SECTIONS_TOP,
                 bottom: float = PAGE_BOTTOM) -> list[tuple[str, list[str]]]:
    """Wrapped body lines per section, cut so the last section ends above the foot of the page.

    Long lists (many warnings) would otherwise push the Models section off the one-page PDF; the
    longest section loses its last items first and says how many are left to the HTML report."""
    wrapped = [(title, [_wrap(f"- {line}", BODY_WIDTH).splitlines() for line in lines]) for title, lines in sections]
    dropped = [0] * len(wrapped)
    budget = int((top - bottom - SECTION_HEAD * len(sections)) / BODY_LINE)

    def height(i: int) -> int:
        return sum(len(item) for item in wrapped[i][1]) + (dropped[i] > 0) if wrapped[i][1] or dropped[i] else 1

    while sum(height(i) for i in range(len(wrapped))) > budget:
        i = max(range(len(wrapped)), key=lambda j: (height(j), j != len(wrapped) - 1))
        if not wrapped[i][1]:
            break  # nothing left to cut
        wrapped[i][1].pop()
        dropped[i] += 1
    fitted = []
    for (title, items), n in zip(wrapped, dropped):
        lines = [line for item in items for line in item]
        if n:
            lines.append(f"- ... {n} more: see the HTML report")
        fitted.append((title, lines or ["none"]))
    return fitted


def render_pdf_bytes(content: ReportContent) -> bytes:
    """The report as a one-page A4 PDF (matplotlib's PDF backend)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    with plt.rc_context({"pdf.fonttype": 42, "font.size": 8}):
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(0.05, 0.972, f"CervicalAI per-patient readout: {content.case_label} {content.case}", fontsize=13, fontweight="bold")
        fig.text(0.05, 0.955, f"Readout created {content.created}; report by cervicalai {__version__}", fontsize=7,
                 color="#555555")
        fig.text(0.05, 0.925, _wrap(" ".join(statements(content)), 120), fontsize=7.5, color="#1d4f9c", va="center")
        for png, box in ((content.key_image_png, [0.04, 0.70, 0.92, 0.21]), (content.nomogram_png, [0.04, 0.325, 0.92, 0.205])):
            ax = fig.add_axes(box)
            ax.axis("off")
            if png:
                ax.imshow(mpimg.imread(io.BytesIO(png), format="png"))
            else:
                ax.text(0.5, 0.5, "image not available", ha="center", va="center")
        left = "\n".join(f"{k}: {v}" for k, v in content.facts)
        right = "\n".join(f"{k}: {v}" for k, v in content.lnm)
        fig.text(0.05, 0.685, "Tumour", fontsize=10, fontweight="bold", va="top")
        fig.text(0.05, 0.665, _wrap(left, 60), va="top")
        fig.text(0.52, 0.685, "Lymph-node metastasis risk", fontsize=10, fontweight="bold", va="top")
        fig.text(0.52, 0.665, _wrap(right, 58), va="top")
        fig.text(0.05, 0.543, "Nomogram (patient marked)", fontsize=10, fontweight="bold", va="top")
        sections = [("Stage-group readout", content.staging), ("For the reader to confirm", content.needs_reader),
                    ("Warnings", content.warnings + content.notes),
                    ("Models", [f"{k}: {v}" for k, v in content.models])]
        y = SECTIONS_TOP
        for title, lines in fit_sections(sections):
            fig.text(0.05, y, title, fontsize=10, fontweight="bold", va="top")
            fig.text(0.05, y - 0.017, "\n".join(lines), va="top", fontsize=7.5)
            y -= SECTION_HEAD + BODY_LINE * len(lines)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="pdf", metadata={"Title": f"CervicalAI report {content.case}",
                                                    "Creator": f"cervicalai {__version__}"})
        plt.close(fig)
    return buffer.getvalue()


def default_pdf_path(html_path: str | Path) -> Path:
    html_path = Path(html_path)
    return html_path.with_suffix(".pdf")
