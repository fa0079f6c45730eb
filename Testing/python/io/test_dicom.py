"""DICOM scanning, grouping, b-value splitting and volume building (io/dicom.py)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid
from synthetic_dicom import dwi_kwargs, make_series

from CervicalAILib.io.dicom.frames import scan_paths
from CervicalAILib.io.dicom.tags import read_b_value
from CervicalAILib.io.dicom.volumes import group_series, load_dicom_series
from CervicalAILib.io.geometry import orientation_label


def assert_same_image(actual: sitk.Image, expected: sitk.Image) -> None:
    assert actual.GetSize() == expected.GetSize()
    np.testing.assert_allclose(actual.GetSpacing(), expected.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(actual.GetOrigin(), expected.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(actual.GetDirection(), expected.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(sitk.GetArrayFromImage(actual), sitk.GetArrayFromImage(expected), atol=1e-4)


def only_volume(folder):
    series, _ = load_dicom_series([folder])
    assert len(series) == 1
    assert len(series[0].volumes) == 1
    return series[0].volumes[0]


def test_oblique_series_with_random_names_builds_the_described_volume(tmp_path):
    # oblique plane, anisotropic pixels, files shuffled into random nested folders
    angle = np.radians(20)
    synthetic = make_series(
        tmp_path,
        row_direction=(1, 0, 0),
        column_direction=(0, np.cos(angle), -np.sin(angle)),
        pixel_spacing=(0.7, 0.45),
        slice_spacing=3.3,
        origin=(-57.7, -82.4, -27.1),
    )
    volume = only_volume(tmp_path)
    assert volume.usable
    image = volume.image()
    assert_same_image(image, synthetic.image)
    assert orientation_label(image) == "oblique-axial"
    # the last slice sits where its own ImagePositionPatient says
    last = max(synthetic.datasets, key=lambda ds: ds.InstanceNumber)
    np.testing.assert_allclose(image.TransformIndexToPhysicalPoint((0, 0, 5)), [float(v) for v in last.ImagePositionPatient], atol=1e-4)


def test_slices_are_sorted_by_position_not_by_instance_number(tmp_path):
    synthetic = make_series(tmp_path, names="ordered", write=False)
    # number the instances in reverse of their position: a reader trusting InstanceNumber flips the volume
    for ds in synthetic.datasets:
        ds.InstanceNumber = 100 - ds.InstanceNumber
        ds.save_as(tmp_path / f"x{ds.InstanceNumber}.dcm", enforce_file_format=True)
    assert_same_image(only_volume(tmp_path).image(), synthetic.image)


def test_reversed_stack_direction(tmp_path):
    # column cosines pointing the other way flip the normal: the origin must move to the other end
    synthetic = make_series(tmp_path, column_direction=(0, -1, 0))
    image = only_volume(tmp_path).image()
    assert_same_image(image, synthetic.image)
    assert np.linalg.det(np.asarray(image.GetDirection()).reshape(3, 3)) == pytest.approx(1.0)


def test_rescale_slope_and_intercept_are_applied(tmp_path):
    synthetic = make_series(tmp_path, slope=0.5, intercept=-100.0)
    image = only_volume(tmp_path).image()
    assert image.GetPixelID() == sitk.sitkFloat32
    assert_same_image(image, synthetic.image)
    stored_first = int(np.frombuffer(synthetic.datasets[0].PixelData, np.uint16)[0])
    assert sitk.GetArrayFromImage(image)[0, 0, 0] == pytest.approx(stored_first * 0.5 - 100)


def test_integer_data_keeps_an_integer_type(tmp_path):
    make_series(tmp_path, intercept=-1024.0)  # integral rescale: stays integer
    image = only_volume(tmp_path).image()
    assert image.GetPixelID() == sitk.sitkInt16


@pytest.mark.parametrize("b_tag", ["standard", "siemens", "siemens-ob", "ge", "philips", "sequence-name", "comments"])
def test_volumes_sharing_positions_are_split_by_b_value(tmp_path, b_tag):
    synthetic = make_series(tmp_path, **dwi_kwargs(b_tag=b_tag, b_values=[50.0, 400.0, 800.0]))
    series, _ = load_dicom_series([tmp_path])
    assert len(series) == 1
    dwi = series[0]
    assert dwi.split_by == ["b_value"]
    assert [v.b_value for v in dwi.volumes] == [50.0, 400.0, 800.0]
    assert [v.label for v in dwi.volumes] == ["b=50", "b=400", "b=800"]
    for volume in dwi.volumes:
        assert volume.usable, volume.problems
        assert_same_image(volume.image(), synthetic.expected[volume.b_value])


def test_b_value_sources():
    def ds_with(**attributes):
        ds = pydicom.Dataset()
        for key, value in attributes.items():
            setattr(ds, key, value)
        return ds

    assert read_b_value(ds_with(DiffusionBValue=1000.0)) == 1000
    assert read_b_value(ds_with(SequenceName="*ep_b800t")) == 800
    assert read_b_value(ds_with(SequenceName="*ep_b0")) == 0
    assert read_b_value(ds_with(SequenceName="ep_b1400#1")) == 1400
    # "*ep_b50_800" names the b-values a computed image came from, not its own b-value
    assert read_b_value(ds_with(SequenceName="*ep_b50_800")) is None
    assert read_b_value(ds_with(SequenceName="*tse2d1_25")) is None
    assert read_b_value(ds_with(ImageComments="b=600")) == 600
    ge = pydicom.Dataset()
    ge.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x39, "IS", ["1000001000", "8", "0", "0"])
    assert read_b_value(ge) == 1000
    ge_plain = pydicom.Dataset()
    ge_plain.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x39, "IS", ["500", "8", "0", "0"])
    assert read_b_value(ge_plain) == 500
    philips_raw = pydicom.Dataset()  # FL arriving as raw bytes (UN/OB after anonymisation)
    philips_raw.private_block(0x2001, "Philips Imaging DD 001", create=True).add_new(0x03, "OB", np.float32(700).tobytes())
    assert read_b_value(philips_raw) == pytest.approx(700)
    # the standard tag wins over vendor tags
    both = ds_with(DiffusionBValue=900.0)
    both.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0C, "IS", "50")
    assert read_b_value(both) == 900
    assert read_b_value(ds_with(SeriesDescription="t2")) is None


def test_volumes_split_by_b_value_then_gradient_direction(tmp_path):
    # b=0 once, b=1000 in three directions: 4 volumes at the same positions
    synthetic = make_series(tmp_path, **dwi_kwargs(b_values=[0.0, 1000.0, 1000.0, 1000.0]), write=False)
    directions = [None, (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    per_volume = len(synthetic.datasets) // 4
    for index, ds in enumerate(synthetic.datasets):
        direction = directions[index // per_volume]
        if direction is not None:
            ds.DiffusionGradientOrientation = list(map(float, direction))
        ds.save_as(tmp_path / f"f{index}.dcm", enforce_file_format=True)
    series, _ = load_dicom_series([tmp_path])
    assert series[0].split_by == ["b_value", "gradient"]
    assert len(series[0].volumes) == 4 and all(v.usable for v in series[0].volumes)


def test_per_slice_varying_values_do_not_split_a_volume(tmp_path):
    # a trigger time that differs on every slice must not turn one volume into single slices
    synthetic = make_series(tmp_path, write=False, duplicate_slices=(2,))
    for index, ds in enumerate(synthetic.datasets):
        ds.TriggerTime = str(10 * index)
        ds.save_as(tmp_path / f"f{index}.dcm", enforce_file_format=True)
    series, _ = load_dicom_series([tmp_path])
    assert len(series[0].volumes) == 1
    assert "duplicated slices" in series[0].volumes[0].problems[0]


def test_two_series_in_one_folder_are_separated(tmp_path):
    t2 = make_series(tmp_path, series_number=3, description="t2_tse_tra", seed=1)
    sag = make_series(
        tmp_path, series_number=4, description="t2_tse_sag", row_direction=(0, 1, 0), column_direction=(0, 0, -1), seed=2
    )
    series, scan = load_dicom_series([tmp_path])
    assert [s.key for s in series] == ["3", "4"]
    assert_same_image(series[0].volumes[0].image(), t2.image)
    assert_same_image(series[1].volumes[0].image(), sag.image)
    assert orientation_label(series[1].volumes[0].image()) == "sagittal"
    assert len(scan.frames) == 12


def test_one_series_uid_with_two_geometries_becomes_two_series(tmp_path):
    uid = generate_uid()
    make_series(tmp_path, series_uid=uid, series_number=1, n_slices=3, description="loc", seed=1)
    make_series(tmp_path, series_uid=uid, series_number=1, n_slices=3, description="loc", seed=2,
                row_direction=(0, 1, 0), column_direction=(0, 0, -1))
    series, _ = load_dicom_series([tmp_path])
    assert sorted(s.key for s in series) == ["1.1", "1.2"]
    assert {orientation_label(s.volumes[0].image()) for s in series} == {"axial", "sagittal"}


def test_multiframe_enhanced_mr_matches_single_frame_series(tmp_path):
    highdicom = pytest.importorskip("highdicom")
    synthetic = make_series(tmp_path / "single", names="ordered")
    legacy = [pydicom.dcmread(p) for p in synthetic.files]
    enhanced = highdicom.legacy.LegacyConvertedEnhancedMRImage(
        legacy_datasets=legacy,
        series_instance_uid=generate_uid(),
        series_number=20,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    (tmp_path / "multi").mkdir()
    enhanced.save_as(tmp_path / "multi" / "enhanced")
    series, _ = load_dicom_series([tmp_path / "multi"])
    assert len(series) == 1 and series[0].volumes[0].usable, series[0].volumes[0].problems
    assert len(series[0].volumes[0].frames) == 6
    assert_same_image(series[0].volumes[0].image(), synthetic.image)


def test_rle_compressed_pixel_data(tmp_path):
    synthetic = make_series(tmp_path, names="ordered", write=False)
    for index, ds in enumerate(synthetic.datasets):
        ds.compress(pydicom.uid.RLELossless)
        ds.save_as(tmp_path / f"c{index}.dcm", enforce_file_format=True)
    assert_same_image(only_volume(tmp_path).image(), synthetic.image)


def test_scan_reports_non_dicom_and_unreadable_files(tmp_path):
    make_series(tmp_path / "s", names="ordered")
    (tmp_path / "README.txt").write_text("notes")
    (tmp_path / ".DS_Store").write_bytes(b"\0" * 20)
    (tmp_path / "IM9999").write_bytes(b"garbage" * 50)  # DICOM-like name, not DICOM
    scan = scan_paths([tmp_path])
    assert len(scan.frames) == 6
    assert [p.name for p, _ in scan.unreadable] == ["IM9999"]
    assert sorted(p.name for p in scan.ignored) == [".DS_Store", "README.txt"]
    assert group_series(scan.frames)[0].volumes[0].usable
