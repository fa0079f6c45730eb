"""Staging readout and clinical-input validation."""

from __future__ import annotations

import pytest

from CervicalAILib.contracts.clinical import validate_clinical
from CervicalAILib.core.errors import InputError
from CervicalAILib.scoring.staging import (
    figo_size_class,
    lymph_node_assessment,
    stage_group_of,
    staging_readout,
)


@pytest.mark.parametrize(
    # FIGO 2018: IB1 < 2 cm, IB2 >= 2 cm and < 4 cm, IB3 >= 4 cm (greatest dimension)
    "diameter, expected", [(5.0, "IB1"), (19.99, "IB1"), (20.0, "IB2"), (39.99, "IB2"), (40.0, "IB3"), (75.0, "IB3")]
)
def test_figo_size_class_boundaries(diameter, expected):
    assert figo_size_class(diameter) == expected


def test_figo_size_class_refuses_empty_tumour():
    with pytest.raises(InputError, match="positive"):
        figo_size_class(0.0)


@pytest.mark.parametrize(
    "short, long_, necrosis, c_lnm, sra, n_rules",
    [
        (4.0, 6.0, False, False, False, 0),
        (10.0, 14.0, False, True, True, 1),  # size rule only (ratio 0.71)
        (6.0, 9.0, True, False, True, 1),  # necrosis alone
        (8.5, 10.0, False, False, True, 1),  # round node: ratio 0.85 > 0.8
        (8.5, 11.0, False, False, False, 0),  # ratio 0.77
        (7.9, 8.0, False, False, False, 0),  # round but below 8 mm
        (12.0, 13.0, True, True, True, 3),
    ],
)
def test_sra_rules_of_seed_004(short, long_, necrosis, c_lnm, sra, n_rules):
    result = lymph_node_assessment(short, long_, necrosis)
    assert result["c_lnm"] is c_lnm
    assert result["sra"] is sra
    assert len(result["sra_rules"]) == n_rules


def test_missing_measurements_are_not_read_as_negative():
    assert lymph_node_assessment(None, None, None)["sra"] is None
    undetermined = lymph_node_assessment(9.0, None, False)  # ratio rule cannot be checked
    assert undetermined["c_lnm"] is False and undetermined["sra"] is None
    assert lymph_node_assessment(12.0, None, None)["sra"] is True  # the size rule suffices


def test_stage_groups_of_seed_000():
    assert [stage_group_of(s) for s in ("IA2", "IB2", "IIA1")] == ["surgery"] * 3
    assert [stage_group_of(s) for s in ("IB3", "IIA2", "IIIC1", "IVB")] == ["chemoradiotherapy"] * 4


def test_staging_readout_wording_and_reader_tasks():
    readout = staging_readout(34.2, {"ln_short_axis_mm": 6, "ln_long_axis_mm": 9, "ln_necrosis": False})
    assert readout["measured"]["figo_size_class"] == "IB2"
    assert readout["measured"]["size_class_valid"] is False
    assert "only if the reader confirms" in readout["measured"]["text"]
    assert any("confined" in task for task in readout["needs_reader"])
    confirmed = staging_readout(
        34.2, {"confined_to_cervix": True}, stage_group_probability=0.62, stage_group_model="m@1", stage_group_cutoff=0.7
    )
    assert confirmed["measured"]["size_class_valid"] is True
    assert confirmed["predicted"]["stage_group"] == "surgery"  # 0.62 below the model's cut-off 0.7
    assert any("lymph node" in task for task in confirmed["needs_reader"])
    extended = staging_readout(52.0, {"confined_to_cervix": False})
    assert extended["measured"]["figo_size_class"] is None


def test_clinical_validation_normalises_values():
    clean = validate_clinical(
        {"age": "51", "figo_stage": "ib2", "histology": "scc", "ln_necrosis": "no", "c_custom": 3, "center": " B "}
    )
    assert clean == {"age": 51.0, "figo_stage": "IB2", "histology": "SCC", "ln_necrosis": False, "c_custom": 3, "center": "B"}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"ln_short_axis_mm": -3}, r"ln_short_axis_mm=-3 mm is out of range \[0, 80\] mm"),
        ({"age": "fifty"}, "age='fifty' is not a number"),
        ({"figo_stage": "IB4"}, "not one of"),
        ({"ln_necrosis": "maybe"}, "yes/no"),
        ({"ln_short_axis_mm": 12, "ln_long_axis_mm": 9}, "short axis cannot exceed the long axis"),
        ({"scc_ag": "inf"}, "scc_ag='inf' is not a finite number"),
    ],
)
def test_clinical_validation_errors_name_the_field(values, message):
    with pytest.raises(InputError, match=message):
        validate_clinical(values)


def test_required_clinical_values():
    with pytest.raises(InputError, match=r"missing: ln_short_axis_mm \(Largest pelvic lymph node"):
        validate_clinical({"age": 40}, required=("ln_short_axis_mm",))
