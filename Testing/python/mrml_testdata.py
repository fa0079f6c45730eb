"""Shared by the MRML tests of the module Libs (Testing/python/slicer): a scene as the application has it,
a T2WI test image, rotations for oblique volumes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import SimpleITK as sitk


def new_scene() -> Iterator[Any]:
    """A vtkMRMLScene with Slicer's default colour tables (as in the application), released afterwards."""
    import slicer

    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)
    yield scene
    colors.SetMRMLScene(None)


def rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = math.radians(degrees)
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * k @ k


def make_t2(direction=None, size=(48, 40, 14), spacing=(0.7, 0.75, 4.0), origin=(30.0, -12.0, -40.0)) -> sitk.Image:
    rng = np.random.default_rng(1)
    image = sitk.GetImageFromArray(rng.integers(0, 800, tuple(reversed(size))).astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(tuple((np.eye(3) if direction is None else direction).ravel()))
    return image
