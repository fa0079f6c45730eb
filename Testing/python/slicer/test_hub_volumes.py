"""CervicalAIHubLib.volumes on real MRML (slicer-core wheel): which loaded volume plays which sequence role
(names, recorded roles, DICOM headers, the user's choices), the export of volumes as a case folder, and the
folders the readout of volumes loaded from a registered folder uses."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_testdata import make_t2, new_scene, rotation

from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import load_case
from CervicalAILib.io.mrml import volume_node_from_image
from conftest import refdata_path

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (real MRML)")

from CervicalAIHubLib import scene as N  # noqa: E402
from CervicalAIHubLib.volumes import (  # noqa: E402
    assign_volume_roles,
    candidate_volumes,
    describe_node,
    export_case_folder,
    readout_folders,
)

pytestmark = pytest.mark.mrml


@pytest.fixture
def scene():
    yield from new_scene()


def add_volume(scene, name, direction=None, size=(16, 16, 6)):
    return volume_node_from_image(scene, make_t2(direction, size=size), name)


def test_roles_from_node_names_with_the_engines_ranking(scene):
    sagittal = np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], float)
    t2_sag = add_volume(scene, "2: t2_tse_sag", sagittal)
    t2_ax = add_volume(scene, "3: T2 TSE AX")
    dwi = add_volume(scene, "7: ep2d_diff_tra b1000")
    adc = add_volume(scene, "8: ep2d_diff_tra_ADC")
    t1_pre = add_volume(scene, "10: t1_vibe_tra pre")
    cet1 = add_volume(scene, "12: t1_vibe_fs_tra POST GD")
    add_volume(scene, "1: localizer")
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "T2W labels")
    assignment = assign_volume_roles(candidate_volumes(scene))
    assert assignment.roles == {"T2W": t2_ax, "DWI": dwi, "ADC": adc, "CET1": cet1}
    assert labelmap not in candidate_volumes(scene)
    assert any("T2W: chose series" in note for note in assignment.notes)  # the sagittal T2 was passed over
    assert assignment.kinds[t1_pre.GetID()].kind == "T1W"
    assert assignment.kinds[t2_sag.GetID()].kind == "T2W"
    assert assignment.problems == []
    assert describe_node(dwi, assignment) == "7: ep2d_diff_tra b1000: looks like DWI (b=1000 in node name); axial"
    assert describe_node(t2_sag, assignment).endswith("; sagittal")


def test_case_folder_names_and_recorded_roles(scene):
    nodes = {role: add_volume(scene, role) for role in ("T2W", "ADC", "DWI", "CET1")}
    assert assign_volume_roles(candidate_volumes(scene)).roles == nodes
    other = add_volume(scene, "Volume_7")
    other.SetAttribute(N.ROLE, "T2W")  # loaded by CervicalAI as the T2WI
    nodes["T2W"].SetAttribute(N.ROLE, "other")  # an unusable value is ignored, the name still counts
    roles = assign_volume_roles([other, nodes["ADC"]]).roles
    assert roles["T2W"] is other and roles["ADC"] is nodes["ADC"] and roles["DWI"] is None


def test_users_choices_are_kept_and_the_rest_filled(scene):
    t2 = add_volume(scene, "T2 AX")
    dwi = add_volume(scene, "DWI b800")
    oddly_named = add_volume(scene, "series 9")
    assignment = assign_volume_roles(candidate_volumes(scene), keep={"ADC": oddly_named})
    assert assignment.roles == {"T2W": t2, "DWI": dwi, "ADC": oddly_named, "CET1": None}
    assert any("CE-T1WI" in problem for problem in assignment.problems)


def test_roles_from_dicom_headers_when_names_say_nothing(scene, tmp_path):
    from synthetic_dicom import dwi_kwargs, make_series

    t2_series = make_series(tmp_path / "t2", description="t2_tse_tra", series_number=3)
    calculated = make_series(tmp_path / "calc", **dwi_kwargs(b_values=[1400.0], series_number=9,
                             description="ep2d_diff_tra_CALC_BVAL", image_type=("DERIVED", "PRIMARY", "DIFFUSION", "CALC_BVAL")))  # fmt: skip
    acquired = make_series(tmp_path / "dwi", **dwi_kwargs(b_values=[800.0], series_number=6))
    files = {}
    for name, series in (("Volume A", t2_series), ("Volume B", calculated), ("Volume C", acquired)):
        node = volume_node_from_image(scene, series.image, name)
        files[node.GetID()] = series.files
    assignment = assign_volume_roles(candidate_volumes(scene), lambda node: files.get(node.GetID()))
    names = {role: node.GetName() if node else None for role, node in assignment.roles.items()}
    assert names == {"T2W": "Volume A", "DWI": "Volume C", "ADC": None, "CET1": None}  # acquired before calculated
    calc_node = scene.GetFirstNodeByName("Volume B")
    assert assignment.kinds[calc_node.GetID()].is_calculated
    assert assignment.kinds[calc_node.GetID()].reason.startswith("DICOM header:")


def test_roles_of_a_real_study_from_its_dicom_headers(scene):
    """ProstateX-0000 (real Siemens study, 7 series) loaded as anonymous volumes: the roles come from
    the DICOM headers alone, with the engine's choices (axial T2 over sagittal/coronal, acquired DWI
    over the computed b1400, the ADC map; the PD reference scan is not used)."""
    from CervicalAILib.study.load import load_study

    folder = refdata_path("mri", "ProstateX-0000_dicom")
    study = load_study(folder)
    files, by_number = {}, {}
    for series in study.series:
        grid = sitk.Image([int(v) for v in series.size], sitk.sitkUInt8)
        grid.SetSpacing(series.spacing)
        grid.SetDirection(series.direction)
        node = volume_node_from_image(scene, grid, f"Volume {series.key}")
        files[node.GetID()] = sorted(path for path in series.path.rglob("*") if path.is_file())
        by_number[series.key] = node
    assignment = assign_volume_roles(candidate_volumes(scene), lambda node: files[node.GetID()])
    assert assignment.roles == {"T2W": by_number["4"], "DWI": by_number["6"], "ADC": by_number["7"], "CET1": None}
    assert assignment.kinds[by_number["8"].GetID()].is_calculated
    assert assignment.kinds[by_number["9"].GetID()].kind == "other"


# --- exporting volumes and the background steps ---------------------------------------------------------

def test_export_case_folder_keeps_each_grid_and_refuses_bad_selections(scene, tmp_path):
    t2_image = make_t2(rotation([1, 0, 0], 9.0))
    t2 = volume_node_from_image(scene, t2_image, "T2")
    dwi_image = make_t2(size=(20, 18, 7), spacing=(2.0, 2.0, 5.0), origin=(10.0, 0.0, -30.0))
    dwi = volume_node_from_image(scene, dwi_image, "DWI")
    out = export_case_folder({"T2W": t2, "DWI": dwi, "ADC": None}, tmp_path / "input")
    case = load_case(out)
    assert case.roles == ["T2W", "DWI"]
    for role, image in (("T2W", t2_image), ("DWI", dwi_image)):
        written = case.image(role)
        assert written.GetSize() == image.GetSize()
        np.testing.assert_allclose(written.GetDirection(), image.GetDirection(), atol=1e-6)
        np.testing.assert_allclose(written.GetOrigin(), image.GetOrigin(), atol=1e-4)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(image))
    with pytest.raises(InputError, match="no T2-weighted volume selected"):
        export_case_folder({"DWI": dwi}, tmp_path / "x")
    with pytest.raises(InputError, match="selected as both T2W and ADC"):
        export_case_folder({"T2W": t2, "ADC": t2}, tmp_path / "y")
    with pytest.raises(Exception, match="not empty"):
        export_case_folder({"T2W": t2}, out)
    fast = export_case_folder({"T2W": t2, "DWI": dwi}, tmp_path / "fast", compress=False)
    assert sorted(p.name for p in fast.iterdir()) == ["DWI.nii", "T2W.nii"]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(load_case(fast).image("T2W")), sitk.GetArrayFromImage(t2_image))
    with pytest.raises(InputError, match="images only"):
        export_case_folder({"T2W": t2}, tmp_path / "fast2", labels={"tumor": t2_image}, compress=False)


def test_the_readout_of_volumes_loaded_from_a_registered_folder_uses_its_native_study(scene, tmp_path):
    """Features need each sequence's own grid: volumes the hub loaded from a `study register` output (case.json:
    grid T2W) are exported on the T2WI grid, so the readout takes the native study that folder names, with its
    transforms; volumes from a native folder, or changed since loading, keep the exported folder."""
    from CervicalAIHubLib.workflow import mark_loaded
    from CervicalAILib.contracts.case_folder import CASE_FILE, CaseManifest, Grid
    from CervicalAILib.core.atomic import to_json
    from CervicalAILib.io.case import write_case

    t2_image = make_t2()
    dwi_image = sitk.Cast(sitk.ShiftScale(t2_image, 5.0, 0.5), sitk.sitkFloat32)  # on the T2WI grid, as resampled
    native = write_case(tmp_path / "native", {"T2W": t2_image})
    registered = write_case(tmp_path / "registered", {"T2W": t2_image, "DWI": dwi_image}, extra_files={
        CASE_FILE: to_json(CaseManifest(Grid.T2W, str(native)).to_dict()), "transforms/DWI.tfm": "#Insight Transform File V1.0\n"})
    nodes = {role: volume_node_from_image(scene, image, role) for role, image in (("T2W", t2_image), ("DWI", dwi_image))}
    for role, node in nodes.items():
        mark_loaded(node, role, registered)
    exported = export_case_folder(nodes, tmp_path / "work" / "input", compress=False)
    assert readout_folders(nodes, exported, tmp_path / "work" / "case") == (native, registered.resolve())

    (registered / CASE_FILE).write_text(to_json(CaseManifest(Grid.NATIVE).to_dict()))  # a native folder
    assert readout_folders(nodes, exported, tmp_path / "work" / "case") == (exported, tmp_path / "work" / "case")
    (registered / CASE_FILE).write_text(to_json(CaseManifest(Grid.T2W, str(native)).to_dict()))
    edited = volume_node_from_image(scene, sitk.Cast(sitk.ShiftScale(t2_image, 6.0, 0.5), sitk.sitkFloat32), "DWI2")
    mark_loaded(edited, "DWI", registered)  # loaded from the folder, then changed in Slicer
    changed = {"T2W": nodes["T2W"], "DWI": edited}
    exported = export_case_folder(changed, tmp_path / "work2" / "input", compress=False)
    assert readout_folders(changed, exported, None) == (exported, None)
