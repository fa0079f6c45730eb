"""The engine's JSON Schemas and their small validator (no jsonschema package inside Slicer)."""

from __future__ import annotations

import pytest

from CervicalAILib.contracts.clinical import FIELDS, FIGO_STAGES, HISTOLOGIES
from CervicalAILib.contracts.schemas import load_schema, require_valid, validate
from CervicalAILib.core.errors import InputError

SCHEMA = {
    "type": "object",
    "required": ["p"],
    "properties": {
        "p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "n": {"type": "integer", "minimum": 0},
        "tag": {"enum": ["a", "b"]},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "maxItems": 2},
        "either": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": "^x+$"}]},
    },
    "additionalProperties": False,
    "$defs": {"item": {"type": "object", "required": ["v"], "properties": {"v": {"type": "number"}}}},
}


@pytest.mark.parametrize("document,problem", [
    ({"p": 0.5, "n": 3, "tag": "a", "items": [{"v": 1}], "either": "xx"}, None),
    ({"p": None}, None),
    ({}, "required key 'p' is missing"),
    ({"p": True}, "p: true is not number or null"),  # a JSON boolean is never a number
    ({"p": 1.5}, "p: 1.5 is above the maximum 1"),
    ({"p": float("nan")}, "p: nan is not a finite number"),
    ({"p": 0, "n": 2.5}, "n: 2.5 is not integer"),
    ({"p": 0, "n": False}, "n: false is not integer"),
    ({"p": 0, "tag": "c"}, "tag: \"c\" is not one of"),
    ({"p": 0, "items": [{"v": "1"}]}, "items[0].v: \"1\" is not number"),
    ({"p": 0, "items": [{}, {}, {}]}, "items: more than 2 items"),
    ({"p": 0, "either": "xy"}, "does not match ^x+$"),
    ({"p": 0, "extra": 1}, "unknown key 'extra'"),
])
def test_the_validator_finds_each_kind_of_problem(document, problem):
    problems = validate(document, SCHEMA)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_require_valid_names_the_file_and_the_first_problems(tmp_path):
    with pytest.raises(InputError) as caught:
        require_valid({"schema": "cervicalai.readout/1", "lnm_probability": 7.5}, "readout", tmp_path / "r.json",
                      "the readout")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'r.json'}: the readout does not follow its schema (readout.schema.json)")
    assert "required key 'case_id' is missing" in message and "(and " in message  # the rest counted, not listed


def test_the_readout_schema_holds_the_clinical_fields_ranges():
    """One source of truth for the clinical values: the schema's ranges are those the engine validates."""
    clinical = load_schema("readout")["$defs"]["clinical"]["properties"]
    for name, field in FIELDS.items():
        assert name in clinical, name
        if field.kind == "number":
            assert (clinical[name]["minimum"], clinical[name]["maximum"]) == (field.minimum, field.maximum), name
    assert [v for v in clinical["figo_stage"]["enum"] if v] == list(FIGO_STAGES)
    assert [v for v in clinical["histology"]["enum"] if v] == list(HISTOLOGIES)
