"""Per-patient report: self-contained HTML, key image with contour, one-page PDF rendered to PNG, bad input."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib import RESEARCH_USE_STATEMENT
from CervicalAILib.cli import main
from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.report import build_content, write_report


def make_readout(folder: Path) -> Path:
    """A readout folder as `cervicalai predict` writes it (docs/readout.md keys), for a synthetic case."""
    from CervicalAILib.io import measurements as measure
    from CervicalAILib.research.synth import SynthParams, generate_case
    from CervicalAILib.research.synth.writer import write_case_folder
    from CervicalAILib.scoring.nomogram import build_nomogram, nomogram_points, render_nomogram

    case = write_case_folder(generate_case(1, seed=5, params=SynthParams(matrix_scale=0.3)), folder / "SYN1-A-0002")
    readout = folder / "readout"
    readout.mkdir()
    dlrc = {"intercept": -1.2, "coefficients": {"rad_score": 0.9, "dl_score": 1.1, "c_lnm": 1.4},
            "terms": [{"name": "rad_score", "label": "Rad_score", "kind": "score", "columns": ["rad_score"]},
                      {"name": "dl_score", "label": "DL_score", "kind": "score", "columns": ["dl_score"]},
                      {"name": "c_lnm", "label": "c_LNM", "kind": "binary", "columns": ["c_lnm"]}]}
    rng = np.random.default_rng(0)
    spec = build_nomogram(dlrc, {"rad_score": rng.normal(0, 1, 50), "dl_score": rng.normal(0, 1, 50),
                                 "c_lnm": rng.integers(0, 2, 50)})
    values = {"rad_score": 0.8, "dl_score": 1.3, "c_lnm": 1}
    reading = nomogram_points(spec, values)
    render_nomogram(spec, readout / "nomogram.png", patient=values)
    mask = sitk.ReadImage(str(case / "labels" / "tumor.nii.gz"))
    diameter = measure.max_diameter_mm(mask)
    document = {
        "schema": "cervicalai.readout/1",
        "case_id": "CAI-1A2B3C4D5E6F",
        "created": "2026-11-22T10:00:00+00:00",
        "tool": {"name": "cervicalai", "version": "0.1.0"},
        "inputs": {"images": {role: {"path": str(case / f"{role}.nii.gz"), "sha256": "0" * 64}
                              for role in ("T2W", "ADC", "DWI", "CET1")},
                   "mask": {"path": "../SYN1-A-0002/labels/tumor.nii.gz", "sha256": "0" * 64, "grid": "T2W"}},
        "review": {"reviewed": True, "origin": "edited", "reviewer": "Dr Reader", "reviewed_at": "2026-11-21T09:00:00+00:00",
                   "edit_metrics": {"dice": 0.91}},
        "segmentation": {"volume_ml": measure.volume_ml(mask), "max_diameter_mm": diameter,
                         "largest_slice_index": measure.largest_slice_index(mask)},
        "features": {"radiomics": {}, "deep": {}},
        "rad_score": 0.8, "dl_score": 1.3,
        "clinical": {"c_lnm": 1},
        "nomogram": {"points": reading["points"], "total_points": reading["total_points"],
                     "probability": reading["probability"], "image": "nomogram.png"},
        "lnm_probability": reading["probability"],
        "lnm": {"probability": reading["probability"], "cutoff": 0.42, "positive": reading["probability"] >= 0.42,
                "cutoff_source": "training Youden index",
                "validated": [{"cohort": "training", "n": 480, "events": 149, "auc": 0.842},
                              {"cohort": "external_validation", "n": 400, "events": 124, "auc": 0.861,
                               "sensitivity": 0.78, "specificity": 0.81}]},
        "staging": {"measured": {"max_diameter_mm": round(diameter, 1), "figo_size_class": "IB3", "size_class_valid": False,
                                 "text": "Size class IB3 applies only if the reader confirms the tumour is confined to the cervix"},
                    "lymph_nodes": {"c_lnm": True, "sra": True},
                    "needs_reader": ["confirm whether the tumour is confined to the cervix (parametrium, vagina)"],
                    "predicted": {"text": "Predicted probability of the chemoradiotherapy group (IB3/IIA2-IVB): 71%"}},
        "models": {"lnm": {"name": "dlrc-lnm", "version": "1.0.0", "intended_use": "Research on LNM risk.",
                           "training_data": "Synthetic cohort of 1100 patients."},
                   "encoders": [{"name": "simclr-t2", "version": "0.3", "training_data": "Synthetic images."}]},
        "warnings": ["feature original_firstorder_Mean = 9.1 is outside the training range"],
        "statement": RESEARCH_USE_STATEMENT,
    }
    (readout / "readout.json").write_text(json.dumps(document))
    return readout


@pytest.fixture(scope="module")
def readout(tmp_path_factory):
    return make_readout(tmp_path_factory.mktemp("report"))


def _png(data: bytes) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(data), format="png")


def test_html_report_is_self_contained_and_complete(readout, tmp_path):
    paths = write_report(readout, tmp_path / "report.html")
    text = paths.html.read_text()
    assert paths.notes == []
    for expected in ("CAI-1A2B3C4D5E6F", "T2WI, ADC, DWI, CE-T1WI", "IB3", "42.0% (training Youden index)",
                     "Validated: external validation", "AUC 0.86 (n 400, 124 with LNM); sensitivity 78.0% at the operating point",
                     "Validated: training", "chemoradiotherapy group", "confined to the cervix",
                     "outside the training range", "dlrc-lnm@1.0.0",
                     "predicts pelvic lymph-node metastasis; trained on synthetic data (1100 cases), not for clinical use",
                     "simclr-t2@0.3", "trained on synthetic data", "reviewed by Dr Reader"):
        assert expected in text, expected
    # self-contained: every image inline, no link to any file or host
    sources = re.findall(r"src='([^']*)'", text)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(href|src)=['\"](?!data:)", text) and "http" not in text.replace("http-equiv", "")
    key, nomogram = (_png(base64.b64decode(s.split(",", 1)[1])) for s in sources)
    # the key image has three panels and the red tumour contour
    red = (key[..., 0] > 0.9) & (key[..., 1] < 0.3) & (key[..., 2] < 0.3)
    assert red.sum() > 50 and key.shape[1] > 2.5 * key.shape[0]
    assert nomogram.std() > 0.05  # the nomogram PNG, not a blank
    probability = json.loads((readout / "readout.json").read_text())["lnm"]["probability"]
    assert f"LNM risk (DLRC): {100 * probability:.1f}% (at or above the model&#x27;s cut-off of 42.0%)" in text


def test_key_image_is_the_largest_tumour_slice(readout):
    content = build_content(readout)
    readout_doc = json.loads((readout / "readout.json").read_text())
    assert readout_doc["segmentation"]["largest_slice_index"] is not None
    # rebuild the key image for another slice: the contour differs, so the slice choice matters
    from CervicalAILib.report.content import key_image_png

    images = {role: sitk.ReadImage(readout_doc["inputs"]["images"][role]["path"]) for role in ("T2W", "ADC", "CET1")}
    mask = sitk.ReadImage(str((readout / readout_doc["inputs"]["mask"]["path"]).resolve()))
    # the largest slice counted here directly: tumour voxels per axial slice
    areas = (sitk.GetArrayFromImage(mask) > 0).sum(axis=(1, 2))
    assert areas[int(np.argmax(areas))] > areas[0]
    largest = key_image_png(images, mask, slice_index=int(np.argmax(areas)))
    assert largest == content.key_image_png
    other = key_image_png(images, mask, slice_index=0)
    assert other != largest


def test_pdf_is_one_page_and_renders_not_blank(readout, tmp_path):
    paths = write_report(readout, tmp_path / "report.html", pdf_path=tmp_path / "report.pdf")
    data = paths.pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == 1
    assert len(re.findall(rb"/Subtype\s*/Image", data)) >= 2  # key image and nomogram embedded
    png = _render_pdf_page(paths.pdf, tmp_path)
    grey = png[..., :3].mean(axis=-1) if png.ndim == 3 else png
    assert grey.std() > 0.05 and (grey < 0.5).mean() > 0.01  # ink on the page, not a blank sheet


def _render_pdf_page(pdf: Path, tmp_path: Path) -> np.ndarray:
    """Render page 1 to PNG with pypdfium2 or poppler's pdftoppm, whichever is installed."""
    try:
        import pypdfium2
    except ImportError:
        pypdfium2 = None
    if pypdfium2 is not None:
        page = pypdfium2.PdfDocument(str(pdf))[0]
        buffer = io.BytesIO()
        page.render(scale=1).to_pil().save(buffer, format="PNG")
        return _png(buffer.getvalue())
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "50", "-singlefile", str(pdf), str(tmp_path / "page")], check=True)
        return _png((tmp_path / "page.png").read_bytes())
    pytest.skip("no PDF renderer here: install pypdfium2 (PyPI) or poppler-utils (pdftoppm) to render the PDF")


LONG_TRAINING_DATA = (
    "Trained on synthetic data from the CervicalAI generator, not for clinical use. 461 training cases (138 positive "
    "for lnm) of centre A of a synthetic multi-centre cohort: the 70 % training part of a 7:3 split stratified by LNM "
    "(seed 42); features from `cervicalai extract` on T2W, DWI, CET1. " * 4)


def test_model_cards_are_brief_and_the_pdf_fits_one_page(readout, tmp_path):
    """Full model-card paragraphs (as the shipped bundles carry) and a long warning list: the model
    lines stay one short clause each, and every section of the PDF, the Models section last, ends
    above the foot of the A4 page."""
    pypdfium2 = pytest.importorskip("pypdfium2")
    copy = tmp_path / "readout"
    shutil.copytree(readout, copy)
    document = json.loads((copy / "readout.json").read_text())
    card = {"task": "risk-model", "intended_use": "Research use: estimate the probability of ... " * 5,
            "training_data": LONG_TRAINING_DATA, "sha256": {"model.json": "0" * 64}}
    encoder = {"family": "dl-resnet2d", "name": "tumor-encoder-resnet2d", "version": "1.0.0", "sha256": "1" * 64}
    document["models"] = {"lnm": {**card, "name": "dlrc-lnm", "version": "1.0.0"},
                          "stage_group": {**card, "name": "dlrc-stage-group", "version": "1.0.0"},
                          "encoders": [encoder, dict(encoder)]}  # both risk models use the same encoder
    document["warnings"] = [f"feature number {i} is outside the training range" for i in range(40)]
    (copy / "readout.json").write_text(json.dumps(document))

    content = build_content(copy)
    assert [k for k, _ in content.models] == ["LNM: dlrc-lnm@1.0.0", "Stage group: dlrc-stage-group@1.0.0",
                                              "Encoder: tumor-encoder-resnet2d@1.0.0"]
    assert all(len(f"{k}: {v}") <= 160 for k, v in content.models), content.models
    assert content.models[0][1] == ("predicts pelvic lymph-node metastasis; trained on synthetic data (461 cases), "
                                    "not for clinical use")

    paths = write_report(copy, tmp_path / "report.html", pdf_path=tmp_path / "report.pdf")
    assert "feature number 39 is outside" in paths.html.read_text()  # the HTML keeps every warning
    page = pypdfium2.PdfDocument(str(paths.pdf))[0]
    text_page = page.get_textpage()
    text = text_page.get_text_range()
    for expected in ("Models", "dlrc-lnm@1.0.0", "dlrc-stage-group@1.0.0", "tumor-encoder-resnet2d@1.0.0",
                     "more: see the HTML report", "not for clinical use"):
        assert expected in text, expected
    assert "feature number 0 is outside" in text and "feature number 39" not in text  # cut to fit
    # the lowest character on the page stays above a 1 cm margin (PDF y grows upwards from the foot)
    bottoms = [text_page.get_charbox(i)[1] for i in range(text_page.count_chars())]
    assert min(bottoms) > 28, min(bottoms)


def test_missing_images_are_noted_not_fatal(readout, tmp_path):
    copy = tmp_path / "readout"
    shutil.copytree(readout, copy)
    document = json.loads((copy / "readout.json").read_text())
    document["inputs"]["images"]["CET1"]["path"] = "/nowhere/CET1.nii.gz"
    document["nomogram"] = None
    document["lnm"] = {"probability": None}
    (copy / "readout.json").write_text(json.dumps(document))
    (copy / "nomogram.png").unlink()
    paths = write_report(copy, tmp_path / "r.html")
    text = paths.html.read_text()
    assert any("CE-T1WI image not found" in n for n in paths.notes)
    assert "Nomogram not available" in text and "LNM risk (DLRC): not available (see the warnings)" in text


def test_bad_input(readout, tmp_path):
    with pytest.raises(InputError, match="no readout.json"):
        write_report(tmp_path, tmp_path / "r.html")
    (tmp_path / "readout.json").write_text(json.dumps({"schema": "something/1"}))
    with pytest.raises(InputError, match="not a CervicalAI readout"):
        write_report(tmp_path, tmp_path / "r.html")
    with pytest.raises(InputError, match=r"\.html"):
        write_report(readout, tmp_path / "r.txt")
    write_report(readout, tmp_path / "exists.html")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_report(readout, tmp_path / "exists.html")


def test_cli_report(readout, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert main(["report", str(readout), "--out", str(out), "--pdf"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out), str(tmp_path / "cli.pdf")]
    assert (tmp_path / "cli.pdf").read_bytes().startswith(b"%PDF")
    assert main(["report", str(readout), "--out", str(out)]) == 2


def test_pseudonym_replaces_the_case_id_everywhere(readout, tmp_path, capsys):
    """--pseudonym: the keyed pseudonym of `cervicalai export --deidentify` (same key, same patient:
    same pseudonym), labelled "Pseudonym"; the raw case id (here a record number) appears nowhere."""
    from CervicalAILib.export.deidentify import Deidentifier
    from CervicalAILib.export.manifest import patient_id_of_case

    copy = tmp_path / "readout"
    shutil.copytree(readout, copy)
    document = json.loads((copy / "readout.json").read_text())
    mrn = "MRN-98765432"
    document["case_id"] = mrn
    document["warnings"].append(f"case {mrn}: ADC series has 2 missing slices")
    mask = (readout / document["inputs"]["mask"]["path"]).resolve()
    document["inputs"]["mask"]["path"] = str(mask)
    (copy / "readout.json").write_text(json.dumps(document))
    case_dir = mask.parent.parent
    identity = patient_id_of_case(case_dir)
    key = "a-site-secret-key-0123456789"
    expected = Deidentifier(key.encode()).pseudonym(identity)

    plain = write_report(copy, tmp_path / "plain.html").html.read_text()
    assert f"Case {mrn}" in plain and "Pseudonym" not in plain
    out = tmp_path / "pseudo.html"
    assert main(["report", str(copy), "--out", str(out), "--pdf", "--pseudonym", "--key", key]) == 0
    text = out.read_text()
    assert f"Pseudonym {expected}" in text and f"case {expected}: ADC series" in text
    assert mrn not in text and identity not in text and "Case " not in text
    # the nomogram's title (the case id, drawn by `cervicalai predict`) is blanked, the drawing kept
    sources = re.findall(r"src='data:image/png;base64,([^']*)'", text)
    nomogram = _png(base64.b64decode(sources[1]))
    original = _png((copy / "nomogram.png").read_bytes())
    grey, original_grey = nomogram[..., :3].mean(axis=-1), original[..., :3].mean(axis=-1)
    title_rows = np.flatnonzero((original_grey < 0.6).any(axis=1))[0]
    assert (grey[title_rows] > 0.99).all() and not (original_grey[title_rows] > 0.99).all()
    assert np.allclose(grey[len(grey) // 2:], original_grey[len(grey) // 2:], atol=0.01)
    pdf = (tmp_path / "pseudo.pdf").read_bytes()
    assert mrn.encode() not in pdf
    # an explicit identity keys the pseudonym; key options without --pseudonym are refused
    assert main(["report", str(copy), "--out", str(tmp_path / "p2.html"), "--pseudonym", "--key", key,
                 "--patient-id", "P-1"]) == 0
    assert Deidentifier(key.encode()).pseudonym("P-1") in (tmp_path / "p2.html").read_text()
    capsys.readouterr()
    assert main(["report", str(copy), "--out", str(tmp_path / "p3.html"), "--key", key]) == 2
    assert "without --pseudonym" in capsys.readouterr().err
    assert main(["report", str(copy), "--out", str(tmp_path / "p3.html"), "--pseudonym", "--key", "short"]) == 2


def test_the_readout_is_read_into_its_contract_and_back_key_for_key(readout):
    """readout.json -> Readout -> JSON gives the same bytes (key order included); the typed values are the file's."""
    from CervicalAILib.contracts.readout import Readout
    from CervicalAILib.core.atomic import to_json

    document = json.loads((readout / "readout.json").read_text())
    typed = Readout.from_dict(document, readout / "readout.json")
    assert to_json(typed.to_dict()) == to_json(document) and list(typed.to_dict()) == list(document)
    assert Readout.from_dict(typed.to_dict()) == typed
    assert typed.lnm.cutoff == 0.42 and typed.staging.lymph_nodes.sra is True
    assert typed.lnm.validated[1].sensitivity == 0.78 and typed.models.encoders[0].name == "simclr-t2"
    assert build_content(readout).case == typed.case_id


def test_the_three_renderings_say_the_same_risk_sentence(readout):
    """CLI summary, report and the Slicer Predict module's result box take the risk sentence from one place."""
    from CervicalAILib.contracts.readout_text import lnm_line, summary_text
    from CervicalAIPredictLib.readout import read_readout, summary_lines

    typed = read_readout(readout)
    probability = json.loads((readout / "readout.json").read_text())["lnm"]["probability"]
    sentence = f"LNM risk (DLRC): {100 * probability:.1f}% (at or above the model's cut-off of 42.0%)"
    assert lnm_line(typed) == sentence
    assert summary_text(typed).splitlines()[1] == "  " + sentence  # cervicalai predict
    assert ": ".join(build_content(readout).lnm[0]) == sentence  # the report
    assert summary_lines(typed)[0] == sentence  # the Predict module's result box
    # the nodes, the reader's tasks and the warnings too
    content = build_content(readout)
    slicer_lines = summary_lines(typed)
    assert "Lymph nodes (reader): c_LNM positive; SRA positive" in content.staging
    assert "Lymph nodes (reader): c_LNM positive; SRA positive" in slicer_lines
    assert [f"Needs the reader: {task}" for task in content.needs_reader] == [
        line for line in slicer_lines if line.startswith("Needs the reader: ")]
