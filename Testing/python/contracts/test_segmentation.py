"""The typed segmentation summary (contracts/segmentation.py): same JSON back, one line per bad value."""

from __future__ import annotations

import json

import pytest

from CervicalAILib.contracts.case_identity import read_record
from CervicalAILib.contracts.segmentation import SEGMENTATION_SUMMARY, SegmentationSummary
from CervicalAILib.core.atomic import to_json
from CervicalAILib.core.errors import InputError


def document() -> dict:
    return {
        "tumor_found": True, "status": "tumour found", "message": "tumour found", "volume_ml": 21.4,
        "max_diameter_mm": 38.2, "largest_slice_index": 12, "confidence": 0.81, "certainty": 0.9, "flip_agreement": 0.95,
        "flagged_slices": [{"slice": 3, "confidence": 0.42}], "slices": [{"slice": 3, "confidence": 0.42, "tumor_voxels": 9}],
        "confidence_formula": "...", "model": {"name": "seg", "version": "1.1.0", "label": "seg@1.1.0", "path": "/m/seg",
                                               "training_data": "synthetic"},
        "device": {"requested": "cpu", "provider": "CPUExecutionProvider", "note": "cpu"},
        "sequences_used": ["T2W", "ADC"], "sequences_available": ["T2W", "ADC", "DWI"], "fallback": None,
        "anatomy_gate": {"applied": True, "anatomy_found": True, "message": "cervix found"},
        "ood": {"available": True, "score": 0.7, "unusual": False, "message": "like the training images"},
        "warnings": [], "seconds": {"total": 3.2},
        "case": {"case_id": "C1", "images": {"T2W": {"voxels_sha256": "a" * 64, "size": [4, 4, 4]}}},
        "files": {"mask": "tumor.nii.gz", "probability": "tumor_probability.nii.gz"},
    }  # fmt: skip


def test_to_dict_gives_back_the_same_json():
    typed = SegmentationSummary.from_dict(document())
    assert to_json(typed.to_dict()) == to_json(document())
    assert typed.flagged_slices[0].slice == 3 and typed.ood.score == 0.7 and typed.anatomy_found
    assert set(typed.json_extra) == {"slices", "confidence_formula", "device", "seconds"}  # kept, not typed
    gate_closed = {**document(), "anatomy_gate": {"applied": True, "anatomy_found": False}}
    assert not SegmentationSummary.from_dict(gate_closed).anatomy_found


@pytest.mark.parametrize("key,value,message", [
    ("confidence", 1.2, "confidence: 1.2 is above the maximum 1"),
    ("volume_ml", "big", 'volume_ml: "big" is not number'),
    ("flagged_slices", [{"confidence": 0.1}], "flagged_slices[0]: required key 'slice' is missing"),
    ("tumor_found", "yes", 'tumor_found: "yes" is not boolean'),
    ("ood", {"score": "high"}, "ood.score: 'high' is not a number or null"),  # the typed reading, past the schema
    ("anatomy_gate", {"anatomy_found": 0}, "anatomy_gate.anatomy_found: 0 is not true or false or null"),
])
def test_each_kind_of_bad_value_is_one_line_naming_the_key_and_the_file(tmp_path, key, value, message):
    with pytest.raises(InputError) as caught:
        SegmentationSummary.from_dict({**document(), key: value}, tmp_path / SEGMENTATION_SUMMARY)
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / SEGMENTATION_SUMMARY}: the segmentation summary") and message in text, text
    assert "\n" not in text


def test_an_edited_summary_beside_a_mask_is_refused_where_its_case_record_is_read(tmp_path):
    (tmp_path / SEGMENTATION_SUMMARY).write_text(json.dumps(document()))
    record, path = read_record(tmp_path)
    assert record["case_id"] == "C1" and path == tmp_path / SEGMENTATION_SUMMARY
    (tmp_path / SEGMENTATION_SUMMARY).write_text(json.dumps({**document(), "ood": {"score": "high"}}))
    with pytest.raises(InputError, match="ood.score"):
        read_record(tmp_path)
