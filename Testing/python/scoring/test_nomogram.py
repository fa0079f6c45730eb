"""Nomogram: rms-style points, probability read from the points equals the model's, rendering."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from CervicalAILib.scoring.nomogram import build_nomogram, nomogram_points, render_nomogram


@pytest.fixture(scope="module")
def model():
    """A logistic model over a score, c_LNM (0/1), histology (3 levels) and age, fitted with statsmodels."""
    import statsmodels.api as sm

    rng = np.random.default_rng(2)
    n = 500
    score = rng.normal(-1, 1.2, n)
    c_lnm = (rng.uniform(size=n) < 0.15).astype(float)
    histology = rng.choice(np.array(["SCC", "AC", "ASC"]), size=n, p=[0.7, 0.15, 0.15])
    age = rng.normal(52, 10, n)
    lp = 0.4 + 0.9 * score + 2.0 * c_lnm + np.where(histology == "AC", 0.5, 0) - 0.02 * (age - 52)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-lp))).astype(int)
    dummies = np.column_stack([histology == "AC", histology == "ASC"]).astype(float)
    design = np.column_stack([score, c_lnm, dummies, age])
    fit = sm.Logit(y, sm.add_constant(design)).fit(disp=0)
    names = ["rad_score", "c_lnm", "histology=AC", "histology=ASC", "age"]
    dlrc = {
        "terms": [
            {"name": "rad_score", "label": "Rad_score", "kind": "score", "columns": ["rad_score"]},
            {"name": "c_lnm", "label": "c_LNM", "kind": "binary", "columns": ["c_lnm"]},
            {"name": "histology", "label": "Histology", "kind": "categorical", "levels": ["AC", "ASC", "SCC"],
             "reference": "SCC", "columns": ["histology=AC", "histology=ASC"]},
            {"name": "age", "label": "Age", "kind": "continuous", "unit": "years", "columns": ["age"]},
        ],
        "intercept": float(fit.params[0]),
        "coefficients": dict(zip(names, map(float, fit.params[1:]))),
    }
    term_data = {"rad_score": score[:, None], "c_lnm": c_lnm[:, None], "histology": dummies, "age": age[:, None]}
    spec = build_nomogram(dlrc, term_data)
    patients = [{"rad_score": s, "c_lnm": c, "histology": h, "age": a} for s, c, h, a in zip(score, c_lnm, histology, age)]
    return spec, fit, patients


def test_probability_read_from_points_equals_the_model(model):
    spec, fit, patients = model
    expected = fit.predict()
    read = np.array([nomogram_points(spec, p)["probability"] for p in patients])
    assert np.max(np.abs(read - expected)) < 1e-6
    assert np.max(np.abs(read - expected)) < 1e-12  # in fact exact up to rounding


def test_points_scale_is_rms_style(model):
    spec, fit, patients = model
    by_name = {p["name"]: p for p in spec["predictors"]}
    widths = {name: p["max_points"] for name, p in by_name.items()}
    widest = max(widths, key=widths.get)
    assert widths[widest] == pytest.approx(100.0)
    assert widest == "rad_score"  # |0.9| x a 9-unit range beats 2.0 for c_LNM and 0.02 x 60 years
    assert all(0 < w <= 100.0 + 1e-9 for w in widths.values())
    # proportional: points per unit of log-odds are the same for every predictor
    b_c = by_name["c_lnm"]["coefficient"]
    assert by_name["c_lnm"]["levels"][1]["points"] - by_name["c_lnm"]["levels"][0]["points"] == pytest.approx(
        b_c * spec["points_per_unit_lp"])
    # age has a negative coefficient: the youngest patient gets the most points
    age = by_name["age"]
    assert age["coefficient"] < 0
    youngest = min(p["age"] for p in patients)
    assert nomogram_points(spec, patients[0] | {"age": youngest})["points"]["age"] == pytest.approx(age["max_points"])
    # every patient's points lie on the drawn scales; the total is the sum
    reading = nomogram_points(spec, patients[0])
    assert reading["total_points"] == pytest.approx(sum(reading["points"].values()))
    assert 0 <= reading["total_points"] <= spec["total_points"]["max"]
    # probability ticks sit where the total points give that probability
    for t in spec["probability_ticks"]:
        lp = spec["lp_at_zero_points"] + t["total_points"] / spec["points_per_unit_lp"]
        assert 1 / (1 + math.exp(-lp)) == pytest.approx(t["probability"], rel=1e-12)
    with pytest.raises(KeyError, match="not a level"):
        nomogram_points(spec, patients[0] | {"histology": "neuroendocrine"})


def test_render_png_and_svg(model, tmp_path):
    spec, _, patients = model
    png = render_nomogram(spec, tmp_path / "nomogram.png", patient=patients[0])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as image:
        width, height = image.size
    assert width > 1000 and height > 500
    svg = render_nomogram(spec, tmp_path / "nomogram.svg", patient=patients[0])
    text = svg.read_text()
    ET.fromstring(text)  # well-formed
    for label in ("Points", "Total points", "LNM risk", "c_LNM", "Histology", "Age (years)"):
        assert label in text
    # no time stamp, fixed ids: the same drawing gives the same bytes
    again = render_nomogram(spec, tmp_path / "again.svg", patient=patients[0])
    assert again.read_bytes() == svg.read_bytes()
    blank = render_nomogram(spec, tmp_path / "blank.svg")
    assert blank.read_bytes() != svg.read_bytes()
    with pytest.raises(ValueError, match=".png or .svg"):
        render_nomogram(spec, tmp_path / "nomogram.pdf")
