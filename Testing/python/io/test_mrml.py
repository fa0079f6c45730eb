"""SimpleITK (LPS) <-> MRML (RAS) geometry bridge, on real MRML from the slicer-core wheel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.geometry import LPS_TO_RAS, resample_to_reference
from CervicalAILib.io.mrml import (
    LABEL_VALUE_TAG,
    ijk_to_ras_matrix,
    image_from_volume_node,
    labelmap_node_from_mask,
    mask_from_labelmap_node,
    mask_from_segmentation_node,
    segmentation_node_from_mask,
    volume_node_from_image,
)

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (real MRML)")
vtk = pytest.importorskip("vtk")

pytestmark = pytest.mark.mrml


def rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = math.radians(degrees)
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * k @ k


DIRECTIONS = {
    "axial": np.eye(3),
    "oblique": rotation([0.3, 1.0, 0.4], 17.0),
    "flipped": np.diag([1.0, -1.0, 1.0]),  # left-handed index axes (det -1)
    "oblique-sagittal-flipped": rotation([1.0, 0.2, 0.0], 23.0) @ np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], float),
}


def make_image(direction=None, dtype=np.int16, size=(7, 6, 5), spacing=(0.62, 0.81, 4.3),
               origin=(-123.4, 56.7, -89.1), seed=0) -> sitk.Image:
    rng = np.random.default_rng(seed)
    shape = tuple(reversed(size))
    if np.dtype(dtype).kind == "f":
        array = rng.normal(100.0, 30.0, shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        array = rng.integers(max(info.min, -3000), min(info.max, 3000), shape, endpoint=True).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(tuple(np.asarray(np.eye(3) if direction is None else direction, dtype=float).ravel()))
    return image


def make_mask(reference: sitk.Image, labels=(1, 3)) -> sitk.Image:
    """Two blocks with the given label values, touching, on `reference`'s grid."""
    size = reference.GetSize()
    array = np.zeros(tuple(reversed(size)), np.uint8)
    array[1:4, 1:4, 1:4] = labels[0]
    array[2:5, 3:6, 4:7] = labels[1]
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(reference)
    return mask


@pytest.fixture
def scene():
    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()  # default colour tables, as in the Slicer application
    colors.SetMRMLScene(scene)
    yield scene
    colors.SetMRMLScene(None)


def assert_same_geometry(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    assert np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6, rtol=0)
    assert np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-6, rtol=0)
    assert np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6, rtol=0)


def node_ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


# --- volumes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_volume_round_trip_is_exact(scene, direction):
    image = make_image(DIRECTIONS[direction])
    node = volume_node_from_image(scene, image, "T2W")
    assert node.IsA("vtkMRMLScalarVolumeNode") and node.GetName() == "T2W"
    assert node.GetDisplayNode() is not None
    back = image_from_volume_node(node)
    assert back.GetPixelID() == image.GetPixelID()
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert_same_geometry(back, image)


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_a_voxel_is_at_the_same_physical_point_in_both_worlds(scene, direction):
    image = make_image(DIRECTIONS[direction])
    node = volume_node_from_image(scene, image, "T2W")
    ijk_to_ras = node_ijk_to_ras(node)  # MRML's own matrix
    assert np.allclose(node.GetSpacing(), image.GetSpacing(), atol=1e-12)
    image_data = node.GetImageData()
    for index in [(0, 0, 0), (6, 5, 4), (3, 1, 2), (6, 0, 4)]:
        ras = ijk_to_ras @ np.array([*index, 1.0])
        lps = np.asarray(image.TransformIndexToPhysicalPoint(index))
        assert np.allclose(ras[:3], LPS_TO_RAS @ lps, atol=1e-6), f"voxel {index}"
        # the voxel there holds the same value (vtk's i, j, k order, not numpy's)
        assert image_data.GetScalarComponentAsDouble(*index, 0) == image.GetPixel(index)
    # and MRML's RAS -> IJK brings a SimpleITK point back to its voxel
    ras_to_ijk = vtk.vtkMatrix4x4()
    node.GetRASToIJKMatrix(ras_to_ijk)
    lps = image.TransformIndexToPhysicalPoint((5, 2, 3))
    ijk = ras_to_ijk.MultiplyPoint([*(LPS_TO_RAS @ np.asarray(lps)), 1.0])
    assert np.allclose(ijk[:3], (5, 2, 3), atol=1e-6)
    assert np.allclose(ijk_to_ras_matrix(image), ijk_to_ras, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_pixel_types_survive(scene, dtype):
    image = make_image(DIRECTIONS["oblique"], dtype=dtype)
    back = image_from_volume_node(volume_node_from_image(scene, image, "volume"))
    assert sitk.GetArrayViewFromImage(back).dtype == dtype
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_int64_is_narrowed_for_mrml(scene):
    image = sitk.Cast(make_image(), sitk.sitkInt64)
    back = image_from_volume_node(volume_node_from_image(scene, image, "wide"))
    assert back.GetPixelID() == sitk.sitkInt32
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    huge = sitk.Image(image)
    huge[0, 0, 0] = 2**40
    with pytest.raises(InputError, match="do not fit 32-bit"):
        volume_node_from_image(scene, huge, "huge")


def test_vector_volume_round_trip(scene):
    parts = [make_image(DIRECTIONS["oblique"], np.float32, seed=s) for s in range(3)]
    image = sitk.Compose(parts)
    node = volume_node_from_image(scene, image, "rgb", node_class="vtkMRMLVectorVolumeNode")
    back = image_from_volume_node(node)
    assert back.GetNumberOfComponentsPerPixel() == 3
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert_same_geometry(back, image)
    with pytest.raises(InputError, match="vtkMRMLVectorVolumeNode"):
        volume_node_from_image(scene, image, "rgb-as-scalar")


def test_linear_parent_transform_is_applied_and_matches_hardening(scene):
    image = make_image(DIRECTIONS["oblique"])
    node = volume_node_from_image(scene, image, "moved")
    node.SetAndObserveTransformNodeID(linear_transform_node(scene).GetID())

    seen = image_from_volume_node(node)

    # Slicer's own hardening (outside reference) puts the transform into the node's geometry
    slicer.vtkSlicerTransformLogic.hardenTransform(node)
    assert node.GetParentTransformNode() is None
    hardened = image_from_volume_node(node)
    assert_same_geometry(seen, hardened)
    assert np.array_equal(sitk.GetArrayFromImage(seen), sitk.GetArrayFromImage(image))
    assert not np.allclose(seen.GetOrigin(), image.GetOrigin(), atol=1.0)  # the transform did move it


def linear_transform_node(scene, degrees=9.0, shift=(4.0, -7.5, 12.0)):
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "motion")
    matrix = vtk.vtkMatrix4x4()
    rotation_matrix = rotation([0.2, 0.1, 1.0], degrees)
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, rotation_matrix[r, c])
        matrix.SetElement(r, 3, shift[r])
    transform.SetMatrixTransformToParent(matrix)
    return transform


def test_segmentation_under_a_linear_transform_matches_slicer_hardening(scene):
    mask = make_mask(make_image(DIRECTIONS["oblique"]), labels=(1, 3))
    node = segmentation_node_from_mask(scene, mask, "moved")
    node.SetAndObserveTransformNodeID(linear_transform_node(scene, degrees=30.0).GetID())
    default = mask_from_segmentation_node(node)  # on the reference geometry, carried by the transform
    # and on a fine axial grid around where the transform puts it
    centre = np.asarray(default.TransformContinuousIndexToPhysicalPoint([3.0, 2.5, 2.0]))
    grid = make_image(DIRECTIONS["axial"], size=(50, 50, 50), spacing=(0.6, 0.6, 0.6), origin=tuple(centre - 15.0))
    seen = sitk.GetArrayFromImage(mask_from_segmentation_node(node, reference_image=grid))

    slicer.vtkSlicerTransformLogic.hardenTransform(node)  # Slicer moves the labelmaps itself
    assert node.GetParentTransformNode() is None
    hardened = sitk.GetArrayFromImage(mask_from_segmentation_node(node, reference_image=grid))
    hardened_default = mask_from_segmentation_node(node)

    assert_same_geometry(default, hardened_default)
    assert np.array_equal(sitk.GetArrayFromImage(default), sitk.GetArrayFromImage(hardened_default))
    assert np.array_equal(sitk.GetArrayFromImage(default), sitk.GetArrayFromImage(mask))
    assert set(np.unique(seen)) == {0, 1, 3}
    assert np.mean(seen == hardened) > 0.999
    # the transform did move it: far from where the mask was
    assert np.linalg.norm(np.subtract(default.GetOrigin(), mask.GetOrigin())) > 20.0
    assert not sitk.GetArrayFromImage(resample_to_reference(mask, grid, None, sitk.sitkNearestNeighbor)).any()


def test_non_linear_parent_transform_is_refused(scene):
    node = volume_node_from_image(scene, make_image(), "warped")
    grid = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "warp")
    node.SetAndObserveTransformNodeID(grid.GetID())
    with pytest.raises(InputError, match="non-linear transform.*harden"):
        image_from_volume_node(node)


# --- labelmaps ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("direction", ["oblique", "oblique-sagittal-flipped"])
def test_labelmap_round_trip_is_exact(scene, direction):
    mask = make_mask(make_image(DIRECTIONS[direction]), labels=(1, 7))
    node = labelmap_node_from_mask(scene, mask, "tumor")
    assert node.IsA("vtkMRMLLabelMapVolumeNode")
    assert node.GetDisplayNode().GetColorNodeID() is not None
    back = mask_from_labelmap_node(node)
    assert back.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    assert_same_geometry(back, mask)


def test_whole_number_float_masks_become_labels_and_fractions_are_refused(scene):
    mask = sitk.Cast(make_mask(make_image()), sitk.sitkFloat32)
    back = mask_from_labelmap_node(labelmap_node_from_mask(scene, mask, "float"))
    assert back.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask).astype(np.uint8))
    with pytest.raises(InputError, match="whole numbers"):
        labelmap_node_from_mask(scene, mask * 0.5, "half")
    probabilities = volume_node_from_image(scene, mask * 0.3, "probabilities")
    with pytest.raises(InputError, match="probabilities.*whole numbers"):
        mask_from_labelmap_node(probabilities)


# --- segmentations ------------------------------------------------------------------------------------

def segment_by_name(node, name):
    segmentation = node.GetSegmentation()
    return segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name))


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_segmentation_round_trip_is_exact(scene, direction):
    mask = make_mask(make_image(DIRECTIONS[direction]), labels=(1, 3))
    node = segmentation_node_from_mask(
        scene, mask, "review", segment_names={1: "tumor", 3: "lymph node"}, colors={1: (1.0, 0.0, 0.0)}
    )
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 2
    tumour = segment_by_name(node, "tumor")
    assert tumour is not None and tumour.GetColor() == (1.0, 0.0, 0.0)
    assert segment_by_name(node, "lymph node") is not None

    back = mask_from_segmentation_node(node)

    assert back.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    assert_same_geometry(back, mask)
    # the reference geometry the Segment Editor paints on is the mask's grid (MRML's own parser)
    geometry = slicer.vtkOrientedImageData()
    serialized = segmentation.GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    )
    assert slicer.vtkSegmentationConverter.DeserializeImageGeometry(serialized, geometry)
    image_to_world = vtk.vtkMatrix4x4()
    geometry.GetImageToWorldMatrix(image_to_world)
    matrix = np.array([[image_to_world.GetElement(r, c) for c in range(4)] for r in range(4)])
    assert np.allclose(matrix, ijk_to_ras_matrix(mask), atol=1e-6)
    assert geometry.GetExtent() == (0, 6, 0, 5, 0, 4)


def test_one_segment_by_id_or_name_and_unknown_segment(scene):
    mask = make_mask(make_image(DIRECTIONS["oblique"]), labels=(1, 3))
    node = segmentation_node_from_mask(scene, mask, "review", segment_names={1: "tumor", 3: "node"})
    expected = sitk.GetArrayFromImage(mask)
    by_name = sitk.GetArrayFromImage(mask_from_segmentation_node(node, segment_ids=["node"]))
    assert np.array_equal(by_name, np.where(expected == 3, 3, 0))
    segment_id = node.GetSegmentation().GetSegmentIdBySegmentName("tumor")
    by_id = sitk.GetArrayFromImage(mask_from_segmentation_node(node, segment_ids=[segment_id]))
    assert np.array_equal(by_id, np.where(expected == 1, 1, 0))
    with pytest.raises(InputError, match="no segment 'bladder'.*tumor.*node"):
        mask_from_segmentation_node(node, segment_ids=["bladder"])


def test_named_label_absent_from_mask_gives_an_empty_segment(scene):
    mask = make_mask(make_image(), labels=(1, 3))
    node = segmentation_node_from_mask(scene, mask, "review", segment_names={1: "tumor", 2: "cervix", 3: "node"})
    assert node.GetSegmentation().GetNumberOfSegments() == 3
    assert segment_by_name(node, "cervix") is not None
    back = mask_from_segmentation_node(node)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    assert not np.any(sitk.GetArrayFromImage(mask_from_segmentation_node(node, segment_ids=["cervix"])))


def test_segmentation_on_a_reference_volume_grid(scene):
    # the reader's T2WI in Slicer, and a mask computed on a coarser, differently oriented grid
    t2 = make_image(DIRECTIONS["oblique"], size=(20, 18, 6), spacing=(0.7, 0.7, 4.0), origin=(-5.0, -6.0, -10.0))
    volume = volume_node_from_image(scene, t2, "T2W")
    coarse = sitk.Image((9, 8, 5), sitk.sitkUInt8)
    coarse.SetSpacing((1.6, 1.6, 5.0))
    coarse.SetOrigin((-6.0, -7.0, -12.0))
    coarse.SetDirection(tuple(rotation([0.3, 1.0, 0.4], 12.0).ravel()))
    coarse[2:7, 2:6, 1:4] = 1
    node = segmentation_node_from_mask(scene, coarse, "tumor", {1: "tumor"}, reference_volume_node=volume)

    role = node.GetReferenceImageGeometryReferenceRole()
    assert node.GetNodeReferenceID(role) == volume.GetID()
    on_t2 = mask_from_segmentation_node(node)  # default grid: the reference volume's
    assert_same_geometry(on_t2, t2)
    expected = resample_to_reference(coarse, t2, None, sitk.sitkNearestNeighbor)
    assert np.array_equal(sitk.GetArrayFromImage(on_t2), sitk.GetArrayFromImage(expected))
    assert sitk.GetArrayFromImage(on_t2).sum() > 50


def test_export_onto_another_grid_resamples_in_physical_space(scene):
    mask = make_mask(make_image(DIRECTIONS["oblique-sagittal-flipped"], size=(7, 6, 5)), labels=(1, 3))
    node = segmentation_node_from_mask(scene, mask, "review")
    other = make_image(DIRECTIONS["axial"], size=(40, 40, 30), spacing=(0.5, 0.5, 0.5), origin=(-135.0, 45.0, -100.0))
    on_other = mask_from_segmentation_node(node, reference_image=other)
    expected = resample_to_reference(mask, other, None, sitk.sitkNearestNeighbor)
    assert_same_geometry(on_other, other)
    found, wanted = sitk.GetArrayFromImage(on_other), sitk.GetArrayFromImage(expected)
    assert wanted.any() and np.mean(found == wanted) > 0.999  # ties at voxel edges may round either way
    for label in (1, 3):  # each label lands at the same place
        a = np.argwhere(found == label).mean(axis=0)
        b = np.argwhere(wanted == label).mean(axis=0)
        assert np.allclose(a, b, atol=0.1)


def test_slicer_import_and_export_agree_with_the_bridge(scene):
    """Slicer's own segmentation logic is the outside reference for the geometry."""
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    mask = make_mask(make_image(DIRECTIONS["oblique-sagittal-flipped"]), labels=(2, 5))
    # our labelmap -> Slicer's import -> our export: same labels, same place
    imported = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "imported")
    assert logic.ImportLabelmapToSegmentationNode(labelmap_node_from_mask(scene, mask, "lab"), imported)
    back = mask_from_segmentation_node(imported, reference_image=mask)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    # our segmentation -> Slicer's export to a labelmap -> our reader: same voxels per segment
    ours = segmentation_node_from_mask(scene, mask, "ours", {2: "a", 5: "b"})
    exported = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "exported")
    assert logic.ExportAllSegmentsToLabelmapNode(ours, exported, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
    from_slicer = mask_from_labelmap_node(exported)
    assert_same_geometry(from_slicer, mask)
    ours_array, slicer_array = sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(from_slicer)
    assert np.array_equal(ours_array > 0, slicer_array > 0)
    assert len(np.unique(slicer_array[ours_array == 2])) == 1 and len(np.unique(slicer_array[ours_array == 5])) == 1


def test_segment_painted_in_slicer_gets_a_free_label_value(scene):
    mask = make_mask(make_image(), labels=(1, 3))
    node = segmentation_node_from_mask(scene, mask, "review", {1: "tumor", 3: "node"})
    # a reader adds a segment in its own layer (no recorded label value; Slicer's value 1 is taken)
    painted = np.zeros(sitk.GetArrayViewFromImage(mask).shape, np.uint8)
    painted[0, 0, 0:2] = 1
    from vtk.util import numpy_support

    oriented = slicer.vtkOrientedImageData()
    oriented.SetDimensions(7, 6, 5)
    oriented.GetPointData().SetScalars(numpy_support.numpy_to_vtk(painted.ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR))
    matrix = vtk.vtkMatrix4x4()
    ijk_to_ras = ijk_to_ras_matrix(mask)
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, ijk_to_ras[r, c])
    oriented.SetImageToWorldMatrix(matrix)
    segment = slicer.vtkSegment()
    segment.SetName("reader")
    segment.AddRepresentation(slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName(), oriented)
    node.GetSegmentation().AddSegment(segment, "reader")
    assert not segment.HasTag(LABEL_VALUE_TAG)

    back = sitk.GetArrayFromImage(mask_from_segmentation_node(node))

    assert set(np.unique(back)) == {0, 1, 2, 3}
    assert np.array_equal(back == 2, painted == 1)
    assert np.array_equal(back == 3, sitk.GetArrayFromImage(mask) == 3)


# --- bad input ------------------------------------------------------------------------------------------

def test_bad_input_is_refused_with_a_clear_message(scene):
    image = make_image()
    with pytest.raises(InputError, match="expected a 3D image"):
        volume_node_from_image(scene, image[:, :, 0], "slice")
    with pytest.raises(InputError, match="expected a SimpleITK image"):
        volume_node_from_image(scene, np.zeros((3, 3, 3)), "array")
    with pytest.raises(InputError, match="'vtkMRMLModelNode' is not an MRML volume node class"):
        volume_node_from_image(scene, image, "model", node_class="vtkMRMLModelNode")
    assert scene.GetFirstNodeByName("model") is None  # nothing left behind
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(InputError, match="volume node 'empty' has no voxel data"):
        image_from_volume_node(empty)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "nothing")
    with pytest.raises(InputError, match="expected an MRML volume node"):
        image_from_volume_node(segmentation)
    with pytest.raises(InputError, match="segmentation 'nothing' has no segments"):
        mask_from_segmentation_node(segmentation)
    with pytest.raises(InputError, match="expected a segmentation node"):
        mask_from_segmentation_node(empty)
    mask = make_mask(image)
    with pytest.raises(InputError, match="negative label values"):
        segmentation_node_from_mask(scene, sitk.Cast(mask, sitk.sitkInt16) - 1, "negative")
    with pytest.raises(InputError, match="positive label values"):
        segmentation_node_from_mask(scene, mask, "zero", segment_names={0: "background"})
    with pytest.raises(InputError, match="colour for label 1 must be three values in 0..1"):
        segmentation_node_from_mask(scene, mask, "colour", colors={1: (255, 0, 0)})


def test_registration_tfm_loaded_in_slicer_brings_the_moving_volume_onto_the_fixed(scene, tmp_path):
    """The stored `.tfm` (fixed -> moving, ITK convention) read by MRML's own transform reader."""
    from CervicalAILib.registration import write_transform

    transform = sitk.Euler3DTransform()
    transform.SetCenter((10.0, -5.0, 3.0))
    transform.SetRotation(0.05, -0.03, 0.07)
    transform.SetTranslation((4.0, -6.0, 2.0))
    path = write_transform(transform, tmp_path / "DWI.tfm")
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "DWI to T2W")
    storage = scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    to_parent = vtk.vtkMatrix4x4()
    node.GetMatrixTransformToParent(to_parent)
    for fixed_point in ([20.0, 15.0, -8.0], [-35.0, 2.5, 40.0]):
        moving_point = np.asarray(transform.TransformPoint(fixed_point))
        # as the moving volume's parent transform, it puts the moving anatomy where the fixed one is
        shown_at = to_parent.MultiplyPoint([*(LPS_TO_RAS @ moving_point), 1.0])[:3]
        assert np.allclose(shown_at, LPS_TO_RAS @ np.asarray(fixed_point), atol=1e-6)
