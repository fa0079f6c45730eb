"""io.images.write_image: atomic, format from the suffix, and a truncated file is never renamed into place."""

from __future__ import annotations

import errno
import re

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.io import images
from CervicalAILib.io.images import write_image
from conftest import REPO


def _image() -> sitk.Image:
    image = sitk.GetImageFromArray(np.arange(24 * 40, dtype=np.int16).reshape(6, 10, 16))
    image.SetSpacing((0.5, 0.7, 3.0))
    return image


@pytest.mark.parametrize("name", ["t2.nii.gz", "t2.nii", "t2.nrrd", "t2.mha"])
def test_write_image_keeps_format_from_suffix(tmp_path, name):
    path = write_image(_image(), tmp_path / name)
    back = sitk.ReadImage(str(path))
    assert back.GetSpacing() == pytest.approx((0.5, 0.7, 3.0))
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(_image()))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("name", ["t2.nii.gz", "t2.nii"])
def test_a_truncated_write_is_refused_and_the_old_file_kept(tmp_path, monkeypatch, name):
    """ITK does not fail on a full disk: it leaves a truncated file. write_image checks it before the rename."""
    target = tmp_path / name
    write_image(_image(), target)
    before = target.read_bytes()
    real_write = sitk.WriteImage

    def truncating_write(image, path, compress=True):  # what ITK leaves behind when the disk fills up
        real_write(image, path, compress)
        with open(path, "r+b") as handle:
            handle.truncate(400)

    monkeypatch.setattr(images.sitk, "WriteImage", truncating_write)
    with pytest.raises(OSError, match="incomplete \\(disk full") as caught:
        write_image(_image() * 2, target)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_every_image_the_engine_and_the_modules_write_goes_through_write_image():
    """The truncation check lives in write_image: no other engine or module file calls ITK's writer."""
    folders = [REPO / "CervicalAI", REPO / "CervicalAISegment", REPO / "CervicalAIPredict"]
    callers = sorted(str(p.relative_to(REPO)) for folder in folders for p in folder.rglob("*.py")
                     if re.search(r"\bWriteImage\(|ImageFileWriter\(", p.read_text(encoding="utf-8")))
    assert callers == ["CervicalAI/CervicalAILib/io/images.py"]
