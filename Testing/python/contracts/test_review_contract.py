"""The typed review record (contracts/review.py): same JSON back, its schema, one line per bad value."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from segmentation_testdata import box_mask

from CervicalAILib.contracts.review import ORIGINS, EditMetrics, ReviewRecord, record_path
from CervicalAILib.contracts.schemas import load_schema, validate
from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import InputError
from CervicalAILib.core.hashing import sha256_file
from CervicalAILib.review.record import mark_reviewed, read_review

# Written by the code before the typed record (review/record.py at 0696ded: dataclasses.asdict), byte for byte.
WRITTEN_BEFORE_EDITED = """{
  "reviewed": true,
  "origin": "edited",
  "reviewer": "Dr R",
  "reviewed_at": "2026-11-22T09:30:12+00:00",
  "mask_sha256": "d0818f8f3edc10916052e7ceec1ac49fa3841654ee9ee95a77c1f4565bebd368",
  "automatic_model": "seg@1.0",
  "edit_metrics": {
    "dice": 0.8333333333333334,
    "hd95_mm": 1.6,
    "automatic_volume_ml": 0.3763200000000001,
    "reviewed_volume_ml": 0.2688000080108643,
    "volume_change_ml": -0.10751999198913581,
    "volume_change_percent": -28.571426442691266
  }
}
"""
WRITTEN_BEFORE_MANUAL = """{
  "reviewed": true,
  "origin": "manual",
  "reviewer": "Dr R",
  "reviewed_at": "2026-11-22T09:30:12+00:00",
  "mask_sha256": "d0818f8f3edc10916052e7ceec1ac49fa3841654ee9ee95a77c1f4565bebd368",
  "automatic_model": null,
  "edit_metrics": {}
}
"""
WHEN = dt.datetime(2026, 11, 22, 9, 30, 12, tzinfo=dt.UTC)




@pytest.mark.parametrize("text", [WRITTEN_BEFORE_EDITED, WRITTEN_BEFORE_MANUAL,
                                  '{\n  "reviewed": false,\n  "origin": "automatic"\n}\n'])
def test_records_written_before_read_and_write_back_byte_for_byte(text):
    record = ReviewRecord.from_dict(json.loads(text))
    assert to_json(record.to_dict()) == text
    assert validate(json.loads(text), "review") == []


def test_an_older_record_reads_typed(tmp_path):
    mask = tmp_path / "tumor.nii.gz"
    box_mask(mask, (2, 5, 5, 12, 5, 10))
    record_path(mask).write_text(WRITTEN_BEFORE_EDITED.replace("d0818f8f3edc10916052e7ceec1ac49fa3841654ee9ee95a77c1f4565bebd368",
                                                               sha256_file(mask)))
    record = read_review(mask)
    assert record.reviewed and record.algorithm_type == "SEMIAUTOMATIC"
    assert record.edit_metrics.dice == pytest.approx(0.8333333333333334) and record.edit_metrics.hd95_mm == 1.6
    record_path(mask).write_text(WRITTEN_BEFORE_MANUAL.replace("d0818f8f3edc10916052e7ceec1ac49fa3841654ee9ee95a77c1f4565bebd368",
                                                               sha256_file(mask)))
    manual = read_review(mask)
    assert manual.reviewed and manual.edit_metrics is None and manual.algorithm_type == "MANUAL"


@pytest.mark.parametrize("automatic", [True, False])
def test_what_mark_reviewed_writes_follows_the_schema_and_reads_back_the_same(tmp_path, automatic):
    mask = tmp_path / "tumor.nii.gz"
    box_mask(mask, (2, 5, 5, 12, 5, 10))
    written = mark_reviewed(mask, "Dr R", box_mask(None, (2, 5, 5, 12, 5, 12)) if automatic else None,
                            "seg@1.0" if automatic else None, WHEN)
    text = record_path(mask).read_text()
    assert validate(json.loads(text), "review") == []
    again = read_review(mask)
    assert to_json(again.to_dict()) == text == to_json(written.to_dict())
    assert list(json.loads(text)) == [f.name for f in dataclasses.fields(ReviewRecord)][2:]  # bookkeeping first
    if automatic:
        assert again.edit_metrics.dice == pytest.approx(2 * 105 / (147 + 105))
        assert again.edit_metrics.summary().startswith("Dice 0.833, HD95 ")
    else:
        assert json.loads(text)["edit_metrics"] == {}


def test_the_schema_describes_the_record():
    schema = load_schema("review")
    typed = [f.name for f in dataclasses.fields(ReviewRecord) if not f.name.startswith("json_")]
    assert list(schema["properties"]) == typed
    assert schema["properties"]["origin"]["enum"] == list(ORIGINS)
    metrics = [f.name for f in dataclasses.fields(EditMetrics) if not f.name.startswith("json_")]
    assert list(schema["$defs"]["edit_metrics"]["properties"]) == metrics


@pytest.mark.parametrize("change,message", [
    ({"origin": "guessed"}, 'origin: "guessed" is not one of "automatic", "edited", "manual"'),
    ({"reviewed": "yes"}, 'reviewed: "yes" is not boolean'),
    ({"mask_sha256": "abc"}, "mask_sha256: 'abc' does not match"),
    ({"edit_metrics": {"dice": 1.5}}, "edit_metrics.dice: 1.5 is above the maximum 1"),
    ({"edit_metrics": {**json.loads(WRITTEN_BEFORE_EDITED)["edit_metrics"], "hd95_mm": -1}},
     "edit_metrics.hd95_mm: -1 is below the minimum 0"),
    ({"edit_metrics": None}, "edit_metrics: null is not object"),
    ({"edit_metrics": {"dice": 0.5, "hd95_mm": None}}, "edit_metrics: required key 'automatic_volume_ml' is missing"),
])
def test_each_bad_value_is_one_line_naming_the_file_and_the_key(tmp_path, change, message):
    mask = tmp_path / "tumor.nii.gz"
    box_mask(mask, (2, 5, 5, 12, 5, 10))
    record_path(mask).write_text(json.dumps({**json.loads(WRITTEN_BEFORE_EDITED), **change}))
    with pytest.raises(InputError) as caught:
        read_review(mask)
    text = str(caught.value)
    assert text.startswith(f"{record_path(mask)}: the review record") and message in text, text
    assert "\n" not in text


def test_the_typed_reading_checks_the_origin_past_the_schema():
    """from_json (the Slicer side's attribute mapping reads through it too) refuses an unknown origin."""
    with pytest.raises(InputError, match="origin: 'guessed' is not one of automatic, edited, manual"):
        ReviewRecord.from_json({"reviewed": True, "origin": "guessed"})


def test_the_slicer_side_mirrors_the_edit_metrics_field_for_field():
    """CervicalAIHubLib stores the edit metrics as node attributes and maps them back to EditMetrics."""
    from CervicalAIHubLib.scene import METRIC_ATTRIBUTES

    assert list(METRIC_ATTRIBUTES) == [f.name for f in dataclasses.fields(EditMetrics) if not f.name.startswith("json_")]
