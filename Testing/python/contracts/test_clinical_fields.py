"""contracts.clinical: one table of clinical fields, one parser for the reader's values and a model's terms."""

import math

import numpy as np
import pytest

from CervicalAILib.contracts.clinical import (
    ALL_FIELDS,
    COHORT_FIELDS,
    FIELDS,
    KNOWN_CLINICAL,
    parse_value,
    term_value,
    validate_clinical,
)
from CervicalAILib.core.errors import InputError
from CervicalAILib.research.fit.clinical import to_binary

NUMBERS = [f for f in ALL_FIELDS.values() if f.kind == "number"]
BOOLS = [f for f in ALL_FIELDS.values() if f.kind == "bool"]
CHOICES = [f for f in ALL_FIELDS.values() if f.kind == "choice"]


def test_the_table():
    assert set(FIELDS) == {"age", "figo_stage", "histology", "scc_ag", "ln_short_axis_mm", "ln_long_axis_mm",
                           "ln_necrosis", "confined_to_cervix", "center"}
    assert set(COHORT_FIELDS) == {"c_lnm", "sra", "parity", "menopause", "age_at_menopause", "family_history"}
    assert not set(FIELDS) & set(COHORT_FIELDS)
    # what a bundle records (fit copies it into model.json: these exact values are in the shipped bundles)
    assert KNOWN_CLINICAL["age"] == {"label": "Age", "unit": "years", "valid_range": [15.0, 100.0]}
    assert KNOWN_CLINICAL["c_lnm"]["valid_range"] == [0, 1] and "10 mm" in KNOWN_CLINICAL["c_lnm"]["description"]
    assert KNOWN_CLINICAL["parity"] == {"label": "Parity", "unit": "births", "valid_range": [0.0, 30.0]}
    assert KNOWN_CLINICAL["histology"]["description"] == "SCC / AC / ASC / other"


@pytest.mark.parametrize("field", NUMBERS, ids=lambda f: f.name)
def test_number_boundaries(field):
    low, high = float(field.minimum), float(field.maximum)
    term = {"name": field.name, "type": "continuous", "unit": field.unit, "valid_range": [low, high]}
    for inside in (low, high, (low + high) / 2, str(high), f" {low:g} "):
        assert parse_value(field, inside) == float(inside)
        assert validate_clinical({field.name: inside})[field.name] == float(inside)
        assert term_value(term, inside) == (float(inside), None)
    for outside in (math.nextafter(low, -math.inf), math.nextafter(high, math.inf), low - 1, high + 1):
        for parse in (lambda v: parse_value(field, v), lambda v: term_value(term, v)):
            with pytest.raises(InputError, match=rf"clinical value {field.name}=.* is out of range \[{low:g}, {high:g}\]"):
                parse(outside)
    for bad, message in ((True, "is a yes/no value, not a number"), ("many", "is not a number"),
                         ("inf", "is not a finite number"), (-math.inf, "is not a finite number"),
                         ([1], "single value")):
        with pytest.raises(InputError, match=rf"clinical value {field.name}=.*{message}"):
            parse_value(field, bad)
        if not isinstance(bad, list):
            with pytest.raises(InputError, match=rf"clinical value {field.name}=.*{message}"):
                term_value(term, bad)


@pytest.mark.parametrize("field", BOOLS, ids=lambda f: f.name)
def test_yes_no_values(field):
    term = {"name": field.name, "type": "binary"}
    yes = (True, 1, 1.0, np.int64(1), np.bool_(True), "yes", " YES ", "true", "1", "positive")
    no = (False, 0, 0.0, "no", "False", "0", "Negative")
    for value in yes:
        assert parse_value(field, value) is True and term_value(term, value) == (1.0, None) and to_binary(value) == 1.0
    for value in no:
        assert parse_value(field, value) is False and term_value(term, value) == (0.0, None) and to_binary(value) == 0.0
    for bad in (2, -1, 0.5, "maybe", "y", "ja"):
        with pytest.raises(InputError, match=rf"clinical value {field.name}=.* must be yes/no"):
            parse_value(field, bad)
        with pytest.raises(InputError, match=rf"clinical value {field.name}=.* must be yes/no"):
            term_value(term, bad)
        with pytest.raises(ValueError):
            to_binary(bad)


@pytest.mark.parametrize("field", CHOICES, ids=lambda f: f.name)
def test_choices(field):
    for choice in field.choices:
        assert parse_value(field, choice.lower()) == choice == parse_value(field, f" {choice.upper()} ")
    term = {"name": field.name, "type": "categorical", "levels": list(field.choices[:2])}
    assert term_value(term, field.choices[0].lower()) == (field.choices[0], None)  # same spelling rule as the reader
    value, reason = term_value(term, field.choices[-1])
    assert value is None and "was not seen in training" in reason  # a valid value the model never saw: missing
    for bad in ("IB4", "squamous", 3):
        with pytest.raises(InputError, match=rf"clinical value {field.name}="):
            parse_value(field, bad)
        # a model's levels decide what it can use (a site's cohort may have levels the table lacks): missing
        assert "was not seen in training" in term_value(term, bad)[1]
    assert term_value(term | {"levels": ["neuroendocrine"]}, " neuroendocrine") == ("neuroendocrine", None)


@pytest.mark.parametrize("missing", [None, "", "   ", float("nan"), np.float64("nan"), np.float32("nan"), "NA", "n/a", "nan", "None"])
def test_not_given_is_the_same_on_both_sides(missing):
    for field in ALL_FIELDS.values():
        assert parse_value(field, missing) is None
    assert validate_clinical({"age": missing}) == {"age": None}
    assert term_value({"name": "age", "type": "continuous"}, missing) == (None, "clinical value 'age' is missing")
    assert term_value({"name": "c_lnm", "type": "binary"}, missing)[0] is None
    assert np.isnan(to_binary(missing))
    with pytest.raises(InputError, match=r"missing: age \(Age\)"):
        validate_clinical({"age": missing}, required=("age",))


def test_reader_values_include_cohort_fields_and_keep_unknown_keys():
    clean = validate_clinical({"c_lnm": "yes", "parity": "2", "sra": 0, "site_score": "x7"})
    assert clean == {"c_lnm": True, "parity": 2.0, "sra": False, "site_score": "x7"}
    with pytest.raises(InputError, match=r"clinical value age_at_menopause=90 years is out of range \[20, 80\] years"):
        validate_clinical({"age_at_menopause": 90})
    with pytest.raises(InputError, match="clinical value center='a\\\\nb' is not a plausible name"):
        validate_clinical({"center": "a\nb"})
    with pytest.raises(InputError, match="center=true is not a name"):
        validate_clinical({"center": True})


def test_a_site_term_outside_the_table_is_parsed_by_kind():
    """A site's own clinical variable (not in the table): the bundle's term says its kind and range."""
    term = {"name": "bmi", "type": "continuous", "unit": "kg/m2", "valid_range": [10.0, 60.0]}
    assert term_value(term, "22.5") == (22.5, None)
    with pytest.raises(InputError, match=r"clinical value bmi=70 kg/m2 is out of range \[10, 60\] kg/m2"):
        term_value(term, 70)
    grade = {"name": "grade", "type": "categorical", "levels": ["G1", "G2"]}
    assert term_value(grade, " G2 ") == ("G2", None)
    assert "not seen in training" in term_value(grade, "g2")[1]  # no table entry: exact levels
