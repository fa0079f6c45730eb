"""The typed readout contract (contracts/readout.py) and its one wording (contracts/readout_text.py)."""

from __future__ import annotations

import copy
import json
import re
import types
import typing

import pytest

from CervicalAILib import RESEARCH_USE_STATEMENT
from CervicalAILib.contracts import readout_text
from CervicalAILib.contracts.readout import READOUT_FILE, Readout, read_readout
from CervicalAILib.contracts.records import Record
from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import InputError
from conftest import REPO


def document() -> dict:
    """A readout as `cervicalai predict` writes it, small (every key docs/readout.md lists that a rendering reads)."""
    return {
        "schema": "cervicalai.readout/1", "case_id": "SYN1-A-0002", "created": "2026-11-22T10:00:00+00:00",
        "tool": {"name": "cervicalai", "version": "0.1.0"},
        "inputs": {"images": {"T2W": {"path": "/c/T2W.nii.gz", "source": "file", "sha256": "ab"},
                              "ADC": {"path": "/c/dicom", "source": "dicom", "sha256": "cd", "sha256_of": "files",
                                      "series_uid": "1.2.3", "series_number": 4, "n_files": 20, "b_value": None}},
                   "mask": {"path": "/c/labels/tumor.nii.gz", "sha256": "ef", "grid": "T2W",
                            "per_sequence": {"T2W": "same grid", "ADC": "registration transform"}},
                   "center": None},
        "review": {"reviewed": True, "origin": "edited", "reviewer": "Dr R", "reviewed_at": "2026-11-22T09:00:00+00:00",
                   "mask_sha256": "ef", "automatic_model": "seg@1", "edit_metrics": {"dice": 0.91}},
        "segmentation": {"volume_ml": 12.5, "max_diameter_mm": 34.1, "largest_slice_index": 9, "confidence": 0.82,
                         "flagged_slices": [{"slice": 3, "confidence": 0.5}], "automatic_model": "seg@1", "ood_score": 1.4},
        "features": {"radiomics": {"T2W_original_firstorder_Mean": 5.1}, "deep": {}, "harmonised": {}, "by_model": {}},
        "rad_score": -0.4321, "dl_score": 0.1234,
        "clinical": {"age": 47.0, "ln_short_axis_mm": 8.5, "c_lnm": 0},
        "nomogram": {"points": {"rad_score": 35.5, "dl_score": 60.0, "c_lnm": 0.0}, "total_points": 95.5,
                     "probability": 0.2345, "values": {"rad_score": -0.4321, "dl_score": 0.1234, "c_lnm": 0.0},
                     "image": "nomogram.png"},
        "lnm_probability": 0.2345,
        "lnm": {"probability": 0.2345, "cutoff": 0.31, "positive": False, "cutoff_source": "training Youden index",
                "model": "dlrc-lnm@1.0.0", "model_note": None,
                "validated": [{"cohort": "training", "n": 480, "events": 149, "auc": 0.842}],
                "scores": {"rad_score": {"label": "Rad_score", "family": "radiomics", "value": -0.4321, "available": True,
                                         "sequences": ["T2W"], "reason": None}},
                "harmonisation": {"method": "combat", "mode": "reference", "center": None, "note": ""}},
        "stage_group": None,
        "staging": {"measured": {"max_diameter_mm": 34.1, "figo_size_class": "IB2", "size_class_valid": True,
                                 "text": "FIGO 2018 size class IB2 (tumour confined to the cervix, as confirmed by the reader)"},
                    "lymph_nodes": {"c_lnm": False, "sra": True, "sra_rules": ["short axis >= 8 mm and short/long ratio > 0.8"],
                                    "short_long_ratio": 0.85, "note": ""},
                    "needs_reader": ["measure the largest pelvic lymph node"]},
        "models": {"lnm": {"name": "dlrc-lnm", "version": "1.0.0", "task": "risk-model",
                           "training_data": "Synthetic cohort, 1100 training cases.", "intended_use": "research",
                           "source": "user-supplied", "bundle_json_sha256": "aa", "sha256": {"weights.json": "bb"}},
                   "stage_group": None,
                   "encoders": [{"family": "dl-resnet2d", "name": "enc", "sha256": "cc", "version": "1.0.0"}]},
        "warnings": ["ADC_original_firstorder_Median = 812 is outside the training range 900-2100"],
        "seconds": {"inputs": 0.1, "masks": 0.2, "features": 1.5, "scores": 0.01, "writing": 0.3, "total": 2.2},
        "statement": RESEARCH_USE_STATEMENT,
    }  # fmt: skip


def test_to_dict_gives_back_the_same_json():
    original = document()
    typed = Readout.from_dict(original)
    assert to_json(typed.to_dict()) == to_json(original)
    assert Readout.from_dict(typed.to_dict()) == typed
    assert typed.inputs.images["ADC"].series_number == 4 and typed.segmentation.flagged_slices[0].slice == 3
    assert typed.lnm.validated[0].auc == 0.842 and typed.models.lnm.source == "user-supplied"
    assert typed.models.lnm.json_extra == {"sha256": {"weights.json": "bb"}}  # kept, not typed


def test_unknown_and_missing_keys_survive_the_round_trip():
    """An older or newer readout loses nothing: keys this version does not type are kept, absent ones stay absent."""
    original = document()
    original["lnm"]["future_key"] = {"x": [1, 2]}
    del original["tool"], original["segmentation"]["ood_score"], original["staging"]["lymph_nodes"]["note"]
    typed = Readout.from_dict(original)
    assert typed.tool is None and typed.segmentation.ood_score is None
    assert to_json(typed.to_dict()) == to_json(original)


def test_read_readout_names_the_file(tmp_path):
    with pytest.raises(InputError, match=f"no {READOUT_FILE} here"):
        read_readout(tmp_path)
    (tmp_path / READOUT_FILE).write_text(json.dumps(document()))
    folder, typed = read_readout(tmp_path)
    assert folder == tmp_path and typed.case_id == "SYN1-A-0002"


def _set(doc: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return doc


@pytest.mark.parametrize("path,value,message", [
    ("schema", "something/1", "not a CervicalAI readout (schema 'something/1'"),
    ("schema", "cervicalai.readout/9", "schema: 'cervicalai.readout/9' does not match"),
    ("lnm.probability", "high", 'lnm.probability: "high" is not number or null'),
    ("lnm.probability", 1.5, "lnm.probability: 1.5 is above the maximum 1"),
    ("lnm.positive", "yes", 'lnm.positive: "yes" is not boolean or null'),
    ("segmentation.volume_ml", True, "segmentation.volume_ml: true is not number"),  # a JSON boolean is never a number
    ("segmentation.volume_ml", -2, "segmentation.volume_ml: -2 is below the minimum 0"),
    ("segmentation.largest_slice_index", 2.5, "segmentation.largest_slice_index: 2.5 is not integer or null"),
    ("rad_score", float("nan"), "rad_score: nan is not a finite number"),
    ("warnings", "one warning", 'warnings: "one warning" is not array'),
    ("clinical.figo_stage", "IB9", 'clinical.figo_stage: "IB9" is not one of'),
    ("inputs.images.PET", {}, "inputs.images: unknown key 'PET'"),
    ("review.origin", "guessed", 'review.origin: "guessed" is not one of'),
    ("case_id", "", "case_id: text shorter than 1 character"),
])
def test_each_kind_of_bad_value_is_one_line_naming_the_key_and_the_file(tmp_path, path, value, message):
    with pytest.raises(InputError) as caught:
        Readout.from_dict(_set(document(), path, value), tmp_path / "readout.json")
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / 'readout.json'}: ") and message in text and "\n" not in text, text


def test_a_score_outside_the_training_range_gets_negative_points_and_is_accepted():
    """The nomogram extrapolates: a Rad_score below its training range gets points below 0 (the
    readout warns about the score). The schema must accept what the nomogram computes (a shipped
    model gave -19.7 points on a compatibility-chain case and predict refused its own readout)."""
    doc = document()
    doc["nomogram"]["points"]["rad_score"] = -19.5
    doc["nomogram"]["total_points"] = sum(doc["nomogram"]["points"].values())
    assert Readout.from_dict(doc).to_dict()["nomogram"]["total_points"] == pytest.approx(40.5)
    with pytest.raises(InputError, match="is below the minimum"):
        doc["nomogram"]["points"]["rad_score"] = -5000.0
        Readout.from_dict(doc)


@pytest.mark.parametrize("path,value,message", [
    ("staging.measured.figo_size_class", 3, "staging.measured.figo_size_class: 3 is not a text or null"),
    ("inputs.mask.per_sequence", ["T2W"], "inputs.mask.per_sequence: list is not an object or null"),
    ("inputs.images.ADC.series_number", "4", "inputs.images.ADC.series_number: '4' is not an integer or null"),
    ("models.encoders.0.name", 5, "models.encoders[0].name: 5 is not a text or null"),
])
def test_the_typed_reading_catches_what_the_schema_leaves_open(path, value, message):
    """Keys the schema does not describe in detail are still checked by their types when read."""
    with pytest.raises(InputError, match="the readout: ") as caught:
        Readout.from_dict(_set(document(), path, value))
    assert message in str(caught.value)


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(lnm_probability=0.5), "lnm_probability 0.5 but lnm.probability 0.2345"),
    (lambda d: d["nomogram"].update(total_points=10.0), "nomogram points add up to 95.50, total_points is 10.00"),
    (lambda d: d["lnm"].update(model="other@2"), "lnm.model is other@2 but models.lnm is dlrc-lnm@1.0.0"),
    (lambda d: d["lnm"].update(positive=True), "LNM probability 0.2345 is below the cut-off 0.31 but marked positive"),
])
def test_a_readout_that_contradicts_itself_is_refused(change, message):
    doc = document()
    change(doc)
    with pytest.raises(InputError, match="contradicts itself") as caught:
        Readout.from_dict(doc)
    assert message in str(caught.value)


def test_the_wording():
    typed = Readout.from_dict(document())
    assert readout_text.lnm_line(typed) == "LNM risk (DLRC): 23.4% (below the model's cut-off of 31.0%)"
    assert readout_text.nodes_line(typed) == ("Lymph nodes (reader): c_LNM negative; SRA positive "
                                              "(short axis >= 8 mm and short/long ratio > 0.8)")
    lines = readout_text.summary_lines(typed)
    assert lines[:2] == ["LNM risk (DLRC): 23.4% (below the model's cut-off of 31.0%)", "LNM model: dlrc-lnm@1.0.0"]
    assert "Needs the reader: measure the largest pelvic lymph node" in lines
    assert ("Model: dlrc-lnm@1.0.0 is user-supplied (not a shipped model: its description and figures are its own)"
            in lines)
    assert lines[-1] == RESEARCH_USE_STATEMENT
    assert readout_text.model_lines(typed)[0] == (
        "LNM: dlrc-lnm@1.0.0 (user-supplied)", "predicts pelvic lymph-node metastasis; trained on synthetic data "
        "(1100 cases), not for clinical use; not a shipped model: its description and figures are its own")
    scores = readout_text.summary_lines(typed, scores=True)
    assert "Rad_score / DL_score: -0.432 / 0.123" in scores and "Nomogram total points: 95.5" in scores
    assert "Tumour volume: 12.5 mL; Maximum 3D diameter: 34.1 mm" in scores

    unmeasured = copy.deepcopy(document())
    unmeasured["lnm"].update(probability=None, positive=None)
    unmeasured["lnm_probability"] = None
    unmeasured["staging"]["lymph_nodes"] = {"c_lnm": None, "sra": None, "sra_rules": [], "note": "no measurement given"}
    typed = Readout.from_dict(unmeasured)
    assert readout_text.lnm_line(typed) == "LNM risk (DLRC): not available (see the warnings)"
    assert readout_text.nodes_line(typed) == "Lymph nodes (reader): c_LNM not measured (no measurement given)"


def _documented_paths(record: type, prefix: str = "") -> set[str]:
    """Dotted key paths of a record's typed keys, as docs/readout.md writes them: `a.b`, `list[].key`,
    `map.*.key` for a {name: record} map, and `parent.*.key` when all of a record's keys are one kind of record."""
    hints = {name: hint for name, hint in typing.get_type_hints(record).items() if name not in ("json_keys", "json_extra")}

    def inner(hint):  # (the record inside a hint, how its keys are written)
        hint = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if typing.get_origin(hint) in (
            typing.Union, types.UnionType) else hint
        if isinstance(hint, type) and issubclass(hint, Record):
            return hint, ""
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is list and isinstance(args[0], type) and issubclass(args[0], Record):
            return args[0], "[]"
        if origin is dict and isinstance(args[1], type) and issubclass(args[1], Record):
            return args[1], ".*"
        return None, ""

    kinds = {inner(hint)[0] for hint in hints.values()}
    same_kind = len(kinds) == 1 and None not in kinds and len(hints) > 1
    paths: set[str] = set()
    for name, hint in hints.items():
        path = f"{prefix}{name}"
        paths.add(path)
        child, suffix = inner(hint)
        if child is not None:
            paths |= _documented_paths(child, f"{prefix}*." if same_kind else f"{path}{suffix}.")
    return paths


def test_docs_readout_md_lists_every_key_of_the_contract_and_no_other():
    """docs/readout.md had drifted from the code (issue 16): its key table and the typed contract are kept in step."""
    table = (REPO / "docs" / "readout.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.M))
    contract = _documented_paths(Readout)
    assert "models.*.name" in contract and "lnm.validated[].auc" in contract and "inputs.images.*.b_value" in contract
    assert sorted(contract - documented) == [], "keys of contracts/readout.py missing from docs/readout.md"
    assert sorted(documented - contract) == [], "keys in docs/readout.md that contracts/readout.py does not have"
