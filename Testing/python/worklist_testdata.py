"""A tiny cohort for the worklist tests: 6 x 24 x 24 T2WI, a half-resolution DWI, automatic contours."""

from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

SHAPE = (6, 24, 24)  # z, y, x
SPACING = (1.0, 1.0, 4.0)


def image(array, dtype=np.uint8, spacing=SPACING, origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    result = sitk.GetImageFromArray(np.asarray(array, dtype=dtype))
    result.SetSpacing(spacing)
    result.SetOrigin(origin)
    return result


def box(z0, z1, y0, y1, x0, x1) -> np.ndarray:
    array = np.zeros(SHAPE, np.uint8)
    array[z0:z1, y0:y1, x0:x1] = 1
    return array


def _ball(shape, spacing_xyz) -> np.ndarray:
    """A smooth ball of 7 mm radius at the centre of the 24 x 24 x 24 mm field of view."""
    z, y, x = np.indices(shape, dtype=float)
    sx, sy, sz = spacing_xyz
    r2 = ((x + 0.5) * sx - 12) ** 2 + ((y + 0.5) * sy - 12) ** 2 + ((z + 0.5) * sz - 12) ** 2
    return np.exp(-r2 / (2 * 7.0**2))


def case_folder(folder, with_segmentation=True):
    folder.mkdir(parents=True)
    # Seeded by the case name, not the path: the same images wherever pytest puts its folders.
    rng = np.random.default_rng(sum(folder.name.encode()))
    # A bright ball in both sequences gives registration a clear optimum (pure noise gave transforms that
    # depended on the noise, and on the temporary folder's path).
    t2 = 300 + 400 * _ball(SHAPE, (1.0, 1.0, 4.0)) + rng.normal(0, 20, SHAPE)
    sitk.WriteImage(image(t2, np.int16), str(folder / "T2W.nii.gz"))
    # the DWI on its own grid (half resolution)
    dwi_shape = (6, 12, 12)
    dwi_array = 100 + 300 * _ball(dwi_shape, (2.0, 2.0, 4.0)) + rng.normal(0, 5, dwi_shape)
    dwi = image(dwi_array, np.float32, spacing=(2.0, 2.0, 4.0))
    sitk.WriteImage(dwi, str(folder / "DWI.nii.gz"))
    (folder / "clinical.json").write_text(json.dumps({"case_id": folder.name, "age": 50, "figo_stage": "IB2"}))
    if with_segmentation:
        seg = folder / "segmentation"
        seg.mkdir()
        sitk.WriteImage(image(box(1, 5, 8, 16, 8, 16)), str(seg / "tumor.nii.gz"))
        probability = box(1, 5, 8, 16, 8, 16) * 200
        sitk.WriteImage(image(probability), str(seg / "tumor_probability.nii.gz"))
        summary = {"tumor_found": True, "volume_ml": 1.0, "max_diameter_mm": 10.0, "confidence": 0.5,
                   "model": {"label": "seg@1.0"}, "warnings": [],
                   "flagged_slices": [{"slice": 4, "confidence": 0.2}, {"slice": 0, "confidence": 0.3}]}
        (seg / "segmentation.json").write_text(json.dumps(summary))
    return folder


def make_cohort(root):
    """C1, C2 with automatic contours (a 4 x 8 x 8 voxel box), C3 without; cohort.csv; a non-case folder."""
    for name in ("C1", "C2", "C3"):
        case_folder(root / name, with_segmentation=name != "C3")
    (root / "notes").mkdir()  # not a case folder: ignored
    with (root / "cohort.csv").open("w") as handle:
        handle.write("case_id,center,lnm\nC1,A,1\nC2,A,0\nC3,B,0\n")
    return root
