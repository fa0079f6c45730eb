"""The one check that a label image can be the primary tumour's mask, before it is measured or exported.

A file given as the tumour mask may be something else: a probability map (fractional values; any
non-zero voxel would count as tumour), a multi-label organ map (a "tumour" of several litres), a
mask filled over the whole image, or a mask with negative values. Each is refused with one line
naming the file and what it holds; `tumour_mask` returns the 0/1 mask otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError

# Largest tumour volume accepted (mL). Cervical tumours above ~250 mL are rare (a 8 cm sphere is 268 mL);
# a "tumour" of a litre is an organ map, a body mask or a mask on the wrong grid.
MAX_TUMOUR_ML = 1000.0
# A mask covering more than this fraction of the image's field of view is not a tumour contour.
MAX_FIELD_OF_VIEW_FRACTION = 0.25


def _values(array: np.ndarray, limit: int = 6) -> str:
    values = np.unique(array[array != 0])
    shown = ", ".join(f"{v:g}" for v in values[:limit])
    return shown + (f", ... ({len(values)} values)" if len(values) > limit else "")


def tumour_mask(mask: sitk.Image, where: str | Path | None = None, what: str = "tumour mask") -> sitk.Image:
    """The mask as uint8 0/1 (geometry kept); InputError naming `where` when it cannot be a tumour mask.

    An empty mask is returned as it is (commands say themselves what an empty mask means to them).
    """
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"the {what} is a colour/vector image, not a label mask", where)
    array = sitk.GetArrayViewFromImage(mask)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise InputError(f"the {what} contains NaN or infinite values", where)
        fractional = array[(array != np.round(array))]
        if fractional.size:
            raise InputError(
                f"the {what} holds fractional values (e.g. {float(fractional[0]):.3g}): a probability map, not a "
                "label mask; threshold it first (e.g. at 0.5)", where)
    if array.size and float(np.min(array)) < 0:
        raise InputError(f"the {what} holds negative values (down to {float(np.min(array)):g}): not a label mask", where)
    labels = np.unique(array[array != 0]) if array.size else np.array([])
    if len(labels) > 1:
        raise InputError(
            f"the {what} holds {len(labels)} different labels ({_values(np.asarray(array))}): a multi-label map (e.g. "
            "organs), not one tumour; give a mask with the tumour alone (one label value)", where)
    binary = sitk.GetImageFromArray((np.asarray(array) != 0).astype(np.uint8))
    binary.CopyInformation(mask)
    count = int(np.count_nonzero(array))
    if count:
        fraction = count / array.size
        volume_ml = count * float(np.prod(mask.GetSpacing())) / 1000.0
        if fraction > MAX_FIELD_OF_VIEW_FRACTION:
            raise InputError(
                f"the {what} covers {100 * fraction:.0f}% of the image ({volume_ml:.0f} mL): not a tumour contour "
                f"(at most {100 * MAX_FIELD_OF_VIEW_FRACTION:.0f}% of the field of view)", where)
        if volume_ml > MAX_TUMOUR_ML:
            raise InputError(
                f"the {what} measures {volume_ml:.0f} mL: implausible for a cervical tumour (at most "
                f"{MAX_TUMOUR_ML:.0f} mL); is it an organ or body mask, or on the wrong voxel size?", where)
    return binary
