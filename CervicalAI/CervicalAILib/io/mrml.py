"""The geometry bridge between SimpleITK images (LPS) and 3D Slicer's MRML nodes (RAS).

The engine works in LPS (DICOM's patient system, SimpleITK's); Slicer's scene in RAS. Both
describe a voxel grid by the same 4x4 matrix from voxel index (i, j, k) to physical point,
IJK -> LPS = [direction * diag(spacing) | origin], and IJK -> RAS = diag(-1, -1, 1) * IJK -> LPS.
The voxel values keep their order: numpy arrays from both are indexed [k, j, i].

In MRML the geometry lives in the node (spacing, origin, IJK-to-RAS directions), not in the
vtkImageData (spacing 1, origin 0); a segmentation keeps it in each vtkOrientedImageData
(image-to-world matrix) plus a "reference image geometry" that fixes the grid the Segment
Editor paints on. A node under a linear parent transform is read in world coordinates (the
transform applied), as the reader sees it; a non-linear parent transform is refused.

Slicer, qt and vtk are imported inside the functions only: the engine must import without them.
Works with the `slicer-core` wheel (no application: MRML classes are used directly).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.geometry import LPS_TO_RAS, index_to_physical_matrix, resample_to_reference, same_grid

# diag(-1, -1, 1, 1): LPS <-> RAS for homogeneous 4x4 matrices (its own inverse)
LPS_TO_RAS_4 = np.eye(4)
LPS_TO_RAS_4[:3, :3] = LPS_TO_RAS
# The label value a segment had in the mask it was made from (restored on export).
LABEL_VALUE_TAG = "CervicalAI.LabelValue"
# Segment colours when none are given (RGB 0..1): tumour-red first, then distinct hues.
DEFAULT_COLORS = [
    (0.89, 0.10, 0.11),
    (0.12, 0.47, 0.71),
    (0.20, 0.63, 0.17),
    (1.00, 0.50, 0.00),
    (0.42, 0.24, 0.60),
    (0.99, 0.75, 0.44),
    (0.65, 0.81, 0.89),
    (0.98, 0.60, 0.60),
]


# --- matrices --------------------------------------------------------------------------------------

def ijk_to_ras_matrix(image: sitk.Image) -> np.ndarray:
    """4x4 matrix from voxel index (i, j, k, 1) to RAS (what MRML calls IJKToRAS)."""
    return LPS_TO_RAS_4 @ index_to_physical_matrix(image)


def _to_vtk_matrix(matrix: np.ndarray):
    import vtk

    result = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            result.SetElement(row, column, float(matrix[row, column]))
    return result


def _from_vtk_matrix(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)])


def _parent_to_world(node) -> np.ndarray:
    """4x4 RAS matrix of the node's parent transforms (identity without one); refuses non-linear."""
    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise InputError(
            f"node {node.GetName()!r} is under a non-linear transform ({parent.GetName()!r}); "
            "harden the transform on it first (Data module: right-click > Harden transform)"
        )
    import vtk

    matrix = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(matrix)
    return _from_vtk_matrix(matrix)


def _image_from_ijk_to_ras(array: np.ndarray, ijk_to_ras: np.ndarray, start_index=(0, 0, 0), vector=False) -> sitk.Image:
    """SimpleITK image from a [k, j, i(, c)] array and the IJK->RAS matrix of index `start_index`."""
    ijk_to_lps = LPS_TO_RAS_4 @ ijk_to_ras
    columns = ijk_to_lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(ijk_to_lps)) or abs(np.linalg.det(columns)) < 1e-12:
        raise InputError(f"the node's IJK-to-RAS matrix is singular or not finite:\n{ijk_to_ras}")
    image = sitk.GetImageFromArray(array, isVector=vector)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in (columns / spacing).ravel()))
    image.SetOrigin(tuple(float(o) for o in columns @ np.asarray(start_index, dtype=float) + ijk_to_lps[:3, 3]))
    return image


def _array_from_vtk_image(image_data, what: str) -> tuple[np.ndarray, tuple[int, int, int], int]:
    """([k, j, i(, c)] copy of the voxels, extent start index, components) of a vtkImageData."""
    from vtk.util import numpy_support

    scalars = image_data.GetPointData().GetScalars() if image_data is not None else None
    if scalars is None:
        raise InputError(f"{what} has no voxel data")
    extent = image_data.GetExtent()
    dims = [extent[2 * axis + 1] - extent[2 * axis] + 1 for axis in range(3)]
    if min(dims) <= 0:
        raise InputError(f"{what} is empty (extent {extent})")
    components = scalars.GetNumberOfComponents()
    shape = (dims[2], dims[1], dims[0]) + ((components,) if components > 1 else ())
    array = numpy_support.vtk_to_numpy(scalars).reshape(shape).copy()
    return array, (extent[0], extent[2], extent[4]), components


def _vtk_image_from_array(array: np.ndarray, image_data=None):
    """Fill (or make) a vtkImageData with a [k, j, i(, c)] array: extent from 0, spacing 1, origin 0."""
    import vtk
    from vtk.util import numpy_support

    components = array.shape[3] if array.ndim == 4 else 1
    image_data = image_data if image_data is not None else vtk.vtkImageData()
    image_data.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    flat = np.ascontiguousarray(array).reshape(-1, components) if components > 1 else np.ascontiguousarray(array).ravel()
    scalars = numpy_support.numpy_to_vtk(flat, deep=True, array_type=numpy_support.get_vtk_array_type(array.dtype))
    image_data.GetPointData().SetScalars(scalars)
    return image_data


def _check_image(image: sitk.Image, what: str) -> None:
    if not isinstance(image, sitk.Image):
        raise InputError(f"{what}: expected a SimpleITK image, got {type(image).__name__}")
    if image.GetDimension() != 3:
        raise InputError(f"{what}: expected a 3D image, got {image.GetDimension()}D (size {image.GetSize()})")


def _voxel_array(image: sitk.Image) -> np.ndarray:
    """The voxels as numpy, 64-bit integers narrowed to 32 bits (Slicer cannot display 'long long')."""
    array = sitk.GetArrayFromImage(image)
    if array.dtype in (np.int64, np.uint64):
        narrow = np.int32 if array.dtype == np.int64 else np.uint32
        info = np.iinfo(narrow)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise InputError(f"voxel values {array.min()}..{array.max()} do not fit 32-bit integers, which MRML needs")
        array = array.astype(narrow)
    return array


def _label_array(mask: sitk.Image, what: str) -> np.ndarray:
    """Integer label array of a mask; float masks are accepted only with whole-number values."""
    _check_image(mask, what)
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{what}: a label image has one value per voxel, got {mask.GetNumberOfComponentsPerPixel()}")
    array = _voxel_array(mask)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise InputError(f"{what}: label values must be whole numbers, found fractional or NaN values")
        low, high = (array.min(), array.max()) if array.size else (0, 0)
        for candidate in (np.uint8, np.uint16, np.int16, np.int32):
            if np.iinfo(candidate).min <= low and high <= np.iinfo(candidate).max:
                return array.astype(candidate)
        raise InputError(f"{what}: label values {low:g}..{high:g} do not fit 32-bit integers")
    return array


# --- volumes -----------------------------------------------------------------------------------------

def volume_node_from_image(scene, image: sitk.Image, name: str, node_class: str = "vtkMRMLScalarVolumeNode"):
    """Add a volume node holding `image` (voxels copied; spacing, origin, oblique direction kept).

    node_class: any MRML volume class, e.g. "vtkMRMLScalarVolumeNode", "vtkMRMLLabelMapVolumeNode",
    or "vtkMRMLVectorVolumeNode" for multi-component images. Display nodes are created.
    """
    _check_image(image, f"image for volume {name!r}")
    components = image.GetNumberOfComponentsPerPixel()
    node = scene.AddNewNodeByClass(node_class, name)
    if node is None or not node.IsA("vtkMRMLVolumeNode"):
        if node is not None:
            scene.RemoveNode(node)
        raise InputError(f"{node_class!r} is not an MRML volume node class")
    if components > 1 and not node.IsA("vtkMRMLVectorVolumeNode"):
        scene.RemoveNode(node)
        raise InputError(
            f"image for volume {name!r} has {components} components per voxel: use node_class='vtkMRMLVectorVolumeNode'"
        )
    _set_volume(node, image)
    node.CreateDefaultDisplayNodes()
    return node


def _set_volume(node, image: sitk.Image) -> None:
    matrix = ijk_to_ras_matrix(image)
    node.SetAndObserveImageData(_vtk_image_from_array(_voxel_array(image)))
    node.SetSpacing(*image.GetSpacing())
    node.SetOrigin(*matrix[:3, 3])
    directions = np.eye(4)
    directions[:3, :3] = LPS_TO_RAS @ np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    node.SetIJKToRASDirectionMatrix(_to_vtk_matrix(directions))


def _world_ijk_to_ras(node) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return _parent_to_world(node) @ _from_vtk_matrix(matrix)


def image_from_volume_node(node) -> sitk.Image:
    """SimpleITK image (LPS) of a volume node's voxels, in world coordinates.

    The pixel type follows the node's scalar type; multi-component volumes give vector images.
    A linear parent transform is applied to the geometry (voxels are not resampled).
    """
    if node is None or not node.IsA("vtkMRMLVolumeNode"):
        raise InputError(f"expected an MRML volume node, got {node.GetClassName() if node is not None else None}")
    what = f"volume node {node.GetName()!r}"
    array, start, components = _array_from_vtk_image(node.GetImageData(), what)
    return _image_from_ijk_to_ras(array, _world_ijk_to_ras(node), start, vector=components > 1)


# --- labelmaps ---------------------------------------------------------------------------------------

def labelmap_node_from_mask(scene, mask: sitk.Image, name: str):
    """Add a labelmap volume node holding an integer label image (0 = background)."""
    labels = _label_array(mask, f"mask for labelmap {name!r}")
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(mask)
    return volume_node_from_image(scene, image, name, "vtkMRMLLabelMapVolumeNode")


def mask_from_labelmap_node(node) -> sitk.Image:
    """Integer label image (LPS) of a labelmap (or any integer-valued scalar volume) node."""
    image = image_from_volume_node(node)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"volume node {node.GetName()!r} has several components per voxel: not a labelmap")
    labels = _label_array(image, f"volume node {node.GetName()!r}")
    if labels.dtype == sitk.GetArrayViewFromImage(image).dtype:
        return image
    result = sitk.GetImageFromArray(labels)
    result.CopyInformation(image)
    return result


# --- segmentations -----------------------------------------------------------------------------------

def _geometry_image(ijk_to_ras: np.ndarray, size) -> sitk.Image:
    """An empty (uint8) image with this grid: carries geometry for resampling."""
    return _image_from_ijk_to_ras(np.zeros((size[2], size[1], size[0]), np.uint8), ijk_to_ras)


def _oriented_image(array: np.ndarray, ijk_to_ras: np.ndarray):
    import slicer

    oriented = slicer.vtkOrientedImageData()
    _vtk_image_from_array(array, oriented)
    oriented.SetImageToWorldMatrix(_to_vtk_matrix(ijk_to_ras))
    return oriented


def _check_colors(colors: dict[int, Any] | None) -> dict[int, tuple[float, float, float]]:
    checked: dict[int, tuple[float, float, float]] = {}
    for label, color in (colors or {}).items():
        rgb = tuple(float(c) for c in color)
        if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
            raise InputError(f"colour for label {label} must be three values in 0..1 (RGB), got {color!r}")
        checked[int(label)] = rgb  # type: ignore[assignment]
    return checked


def segmentation_node_from_mask(
    scene,
    mask: sitk.Image,
    name: str,
    segment_names: dict[int, str] | None = None,
    reference_volume_node=None,
    colors: dict[int, Any] | None = None,
):
    """Add a segmentation node with one segment per label value of `mask` (0 = background).

    segment_names: label value -> segment name (default "Label_<value>"); a named label absent
    from the mask still gets an (empty) segment, ready to be painted.
    reference_volume_node: the volume the segmentation belongs to; its grid becomes the
    segmentation's reference geometry, and a mask on another grid is resampled onto it
    (nearest neighbour, in physical space). Without it the mask's own grid is the reference.
    colors: label value -> (r, g, b) in 0..1. Each segment records its label value
    (tag "CervicalAI.LabelValue"), so `mask_from_segmentation_node` gives the same labels back.
    """
    import slicer

    labels = _label_array(mask, f"mask for segmentation {name!r}")
    if labels.size and labels.min() < 0:
        raise InputError(f"mask for segmentation {name!r} has negative label values ({labels.min()})")
    names = {int(label): str(segment) for label, segment in (segment_names or {}).items()}
    if any(label <= 0 for label in names):
        raise InputError(f"segment names need positive label values (0 is background), got {sorted(names)}")
    palette = _check_colors(colors)

    grid_image = sitk.GetImageFromArray(labels)
    grid_image.CopyInformation(mask)
    if reference_volume_node is not None:
        if not reference_volume_node.IsA("vtkMRMLVolumeNode"):
            raise InputError(f"reference {reference_volume_node.GetName()!r} is not a volume node")
        array, start, _ = _array_from_vtk_image(
            reference_volume_node.GetImageData(), f"reference volume {reference_volume_node.GetName()!r}"
        )
        if start != (0, 0, 0):  # grid of index 0: shift the matrix to the extent's start
            offset = np.eye(4)
            offset[:3, 3] = start
            reference_ijk_to_ras = _world_ijk_to_ras(reference_volume_node) @ offset
        else:
            reference_ijk_to_ras = _world_ijk_to_ras(reference_volume_node)
        reference = _geometry_image(reference_ijk_to_ras, array.shape[:3][::-1])
        if not same_grid(grid_image, reference, tolerance=1e-6):
            grid_image = resample_to_reference(grid_image, reference, None, sitk.sitkNearestNeighbor, 0)
            labels = sitk.GetArrayFromImage(grid_image)
    values = sorted(set(np.unique(labels[labels > 0]).tolist()) | set(names))
    if labels.max(initial=0) <= 255:
        labels = labels.astype(np.uint8)
    ijk_to_ras = ijk_to_ras_matrix(grid_image)
    shared = _oriented_image(labels, ijk_to_ras)

    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    if reference_volume_node is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    segmentation = node.GetSegmentation()
    # the reference grid is exactly the labelmap's (world) grid, parent transforms included
    segmentation.SetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
        slicer.vtkSegmentationConverter.SerializeImageGeometry(shared),
    )
    representation = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    for number, value in enumerate(values):
        segment = slicer.vtkSegment()
        segment_name = names.get(value, f"Label_{value}")
        segment.SetName(segment_name)
        segment.SetColor(*palette.get(value, DEFAULT_COLORS[number % len(DEFAULT_COLORS)]))
        segment.SetLabelValue(int(value))  # one shared labelmap, as Slicer's own import does
        segment.SetTag(LABEL_VALUE_TAG, str(int(value)))
        segment.AddRepresentation(representation, shared)
        segmentation.AddSegment(segment, segmentation.GenerateUniqueSegmentID(segment_name))
    return node


def _segment_ids(segmentation) -> list[str]:
    import vtk

    ids = vtk.vtkStringArray()
    segmentation.GetSegmentIDs(ids)
    return [ids.GetValue(i) for i in range(ids.GetNumberOfValues())]


def _segment_label_value(segment) -> int | None:
    """The label value recorded by `segmentation_node_from_mask`, else the segment's value in
    its shared labelmap (Slicer's own labelmap import keeps the file's values there)."""
    import vtk

    value = vtk.reference("")
    if segment.GetTag(LABEL_VALUE_TAG, value):
        try:
            return int(str(value))
        except ValueError:
            pass
    label = int(segment.GetLabelValue())
    return label if label > 0 else None


def mask_from_segmentation_node(
    node,
    reference_image: sitk.Image | None = None,
    segment_ids: list[str] | None = None,
) -> sitk.Image:
    """uint8 label image (LPS) of a segmentation's segments on `reference_image`'s grid.

    reference_image: the grid to sample on (e.g. the T2WI); default the segmentation's reference
    geometry. segment_ids: segment IDs or names (default all, in the segmentation's order).
    Each segment's voxels get the label value it was made from (recorded by
    `segmentation_node_from_mask`, or its value in Slicer's shared labelmap); a segment whose
    value is missing or already taken gets the smallest unused value 1, 2, ... in order.
    Where segments overlap, the later one wins. Segments on another grid are resampled
    (nearest neighbour, in physical space); a linear parent transform is applied.
    """
    import slicer
    import vtk

    if node is None or not node.IsA("vtkMRMLSegmentationNode"):
        raise InputError(f"expected a segmentation node, got {node.GetClassName() if node is not None else None}")
    segmentation = node.GetSegmentation()
    available = _segment_ids(segmentation)
    if segment_ids is None:
        chosen = available
    else:
        chosen = []
        for wanted in segment_ids:
            found = wanted if wanted in available else segmentation.GetSegmentIdBySegmentName(wanted)
            if not found:
                names = [f"{sid} ({segmentation.GetSegment(sid).GetName()})" for sid in available]
                raise InputError(
                    f"segmentation {node.GetName()!r} has no segment {wanted!r}; it has: {', '.join(names) or 'none'}"
                )
            chosen.append(found)
    if not chosen:
        raise InputError(f"segmentation {node.GetName()!r} has no segments")
    representation = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    if not segmentation.ContainsRepresentation(representation) and not node.CreateBinaryLabelmapRepresentation():
        raise InputError(f"segmentation {node.GetName()!r} cannot be converted to a binary labelmap")
    parent = _parent_to_world(node)

    if reference_image is not None:
        _check_image(reference_image, "reference image")
        target = reference_image
    else:
        target = _reference_geometry(node, parent, chosen)

    # label values: recorded ones when distinct, then the smallest free values for the rest
    recorded = [_segment_label_value(segmentation.GetSegment(sid)) for sid in chosen]
    values: list[int | None] = []
    used: set[int] = set()
    for value in recorded:
        keep = value is not None and 0 < value <= 255 and value not in used
        values.append(value if keep else None)
        if keep:
            used.add(value)
    free = (v for v in range(1, 256) if v not in used)
    try:
        values = [v if v is not None else next(free) for v in values]
    except StopIteration:
        raise InputError(f"too many segments ({len(chosen)}) for a uint8 label image (255 at most)") from None

    output = np.zeros(tuple(reversed(target.GetSize())), np.uint8)
    for sid, value in zip(chosen, values):
        oriented = slicer.vtkOrientedImageData()
        node.GetBinaryLabelmapRepresentation(sid, oriented)
        extent = oriented.GetExtent()
        if oriented.GetPointData().GetScalars() is None or any(extent[2 * a + 1] < extent[2 * a] for a in range(3)):
            continue  # an empty segment: nothing to paint
        image_to_world = vtk.vtkMatrix4x4()
        oriented.GetImageToWorldMatrix(image_to_world)
        array, start, _ = _array_from_vtk_image(oriented, f"segment {sid!r}")
        binary = _image_from_ijk_to_ras((array > 0).astype(np.uint8), parent @ _from_vtk_matrix(image_to_world), start)
        if not same_grid(binary, target, tolerance=1e-6):
            binary = resample_to_reference(binary, target, None, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        output[sitk.GetArrayViewFromImage(binary) > 0] = value
    result = sitk.GetImageFromArray(output)
    result.SetSpacing(target.GetSpacing())
    result.SetOrigin(target.GetOrigin())
    result.SetDirection(target.GetDirection())
    return result


def _reference_geometry(node, parent: np.ndarray, chosen: list[str]) -> sitk.Image:
    """The segmentation's reference grid (world), or the union of its segments' grids."""
    import slicer
    import vtk

    segmentation = node.GetSegmentation()
    serialized = segmentation.GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    )
    geometry = slicer.vtkOrientedImageData()
    if not (serialized and slicer.vtkSegmentationConverter.DeserializeImageGeometry(serialized, geometry, False)):
        # no reference geometry recorded: the merged grid of the chosen segments
        ids = vtk.vtkStringArray()
        for sid in chosen:
            ids.InsertNextValue(sid)
        node.GenerateMergedLabelmapForAllSegments(geometry, slicer.vtkSegmentation.EXTENT_UNION_OF_SEGMENTS, None, ids)
    extent = geometry.GetExtent()
    size = [extent[2 * a + 1] - extent[2 * a] + 1 for a in range(3)]
    if min(size) <= 0:
        raise InputError(f"segmentation {node.GetName()!r} has no reference geometry and no painted voxels")
    image_to_world = vtk.vtkMatrix4x4()
    geometry.GetImageToWorldMatrix(image_to_world)
    start = np.eye(4)
    start[:3, 3] = (extent[0], extent[2], extent[4])
    return _geometry_image(parent @ _from_vtk_matrix(image_to_world) @ start, size)
