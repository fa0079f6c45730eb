"""Review records: reviewer, time, edit metrics, and detection of edits made after review."""

from __future__ import annotations

import datetime as dt

import pytest
from segmentation_testdata import box_mask

from CervicalAILib.contracts.review import record_path
from CervicalAILib.core.errors import InputError
from CervicalAILib.review.record import mark_reviewed, read_review


def test_unreviewed_by_default(tmp_path):
    path = tmp_path / "tumor.nii.gz"
    box_mask(path, (2, 5, 5, 12, 5, 12))
    record = read_review(path)
    assert record.reviewed is False and record.algorithm_type == "AUTOMATIC"


def test_edited_contour_is_semiautomatic_with_metrics(tmp_path):
    automatic = box_mask(None, (2, 5, 5, 12, 5, 12))
    path = tmp_path / "tumor.nii.gz"
    box_mask(path, (2, 5, 5, 12, 5, 10))  # the reader trimmed two columns
    when = dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC)
    record = mark_reviewed(path, " Dr Reader ", automatic_mask=automatic, automatic_model="seg@1.0", now=when)
    assert record.origin == "edited" and record.algorithm_type == "SEMIAUTOMATIC"
    assert record.reviewer == "Dr Reader" and record.reviewed_at == "2026-11-22T09:30:00+00:00"
    assert record.edit_metrics.dice == pytest.approx(2 * 105 / (147 + 105))
    assert record.edit_metrics.volume_change_ml == pytest.approx(-42 * 0.8 * 0.8 * 4 / 1000)
    again = read_review(path)
    assert again.reviewed and again.edit_metrics.to_dict() == record.edit_metrics.to_dict()


def test_unchanged_automatic_and_manual(tmp_path):
    path = tmp_path / "tumor.nii.gz"
    automatic = box_mask(path, (2, 5, 5, 12, 5, 12))
    # a reviewed automatic contour the reader accepted unchanged is vouched for by the reader: MANUAL
    unchanged = mark_reviewed(path, "A", automatic_mask=automatic, automatic_model="seg@1.0")
    assert unchanged.origin == "automatic" and unchanged.algorithm_type == "MANUAL"
    assert read_review(path).algorithm_type == "MANUAL"
    assert mark_reviewed(path, "A").algorithm_type == "MANUAL"


def test_edit_after_review_invalidates_it(tmp_path):
    path = tmp_path / "tumor.nii.gz"
    box_mask(path, (2, 5, 5, 12, 5, 12))
    mark_reviewed(path, "A")
    box_mask(path, (2, 6, 5, 12, 5, 12))
    record = read_review(path)
    assert record.reviewed is False and record.origin == "edited" and record.algorithm_type == "AUTOMATIC"


def test_bad_review_inputs(tmp_path):
    path = tmp_path / "tumor.nii.gz"
    box_mask(path, (2, 5, 5, 12, 5, 12))
    with pytest.raises(InputError, match="reviewer"):
        mark_reviewed(path, "  ")
    record_path(path).write_text("{broken")
    with pytest.raises(InputError, match="not valid"):
        read_review(path)
