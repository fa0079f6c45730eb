"""Intensity preprocessing of a tumour crop, exactly as the encoder bundle declares it."""

from __future__ import annotations

import numpy as np

from CervicalAILib.features.deep.config import CropSpec, IntensitySpec
from CervicalAILib.features.deep.crops import Crop


def normalise_crop(crop: Crop, intensity: IntensitySpec, crop_spec: CropSpec) -> np.ndarray:
    """The network input for one crop, float32 of shape (C, *size) (see IntensitySpec for the steps).

    Statistics are taken over the crop's voxels inside the image ("crop") or over the tumour
    voxels ("tumor"; the crop is used when the sampled tumour is empty, e.g. a one-voxel mask),
    pooled over all channels so that the slices of a 2D crop keep their relative intensities.
    """
    x = crop.image.astype(np.float64)
    region = crop.valid & crop.mask if intensity.stats_region == "tumor" else crop.valid
    if not region.any():
        region = crop.valid
    values = x[region]
    if intensity.clip_percentiles is not None:
        low, high = np.percentile(values, intensity.clip_percentiles)
        x = np.clip(x, low, high)
        values = np.clip(values, low, high)
    if intensity.scale == "zscore":
        sd = float(values.std())
        x = (x - float(values.mean())) / (sd if sd > 0 else 1.0)
    elif intensity.scale == "minmax":
        low, high = float(values.min()), float(values.max())
        x = (x - low) / (high - low) if high > low else np.zeros_like(x)
    if intensity.channel_mean is not None:
        mean = np.asarray(intensity.channel_mean).reshape((-1,) + (1,) * (x.ndim - 1))
        std = np.asarray(intensity.channel_std).reshape((-1,) + (1,) * (x.ndim - 1))
        x = (x - mean) / std
    outside = ~crop.valid
    if crop_spec.masking == "tumor":
        outside = outside | ~crop.mask
    x[outside] = intensity.background
    return x.astype(np.float32)
