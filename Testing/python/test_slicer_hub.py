"""The hub's logic (CervicalAIHubLib): dependency plan, settings, model cards, workflow state on real MRML."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAIHubLib.bundles import bundle_cards, cards_text, chosen_models_dir
from CervicalAIHubLib.dependencies import (
    FROM_EXTENSION,
    GPU_RUNTIME,
    NOT_NEEDED_IN_SLICER,
    REQUIREMENTS,
    SLICER_OWN,
    constraints_text,
    install_plan,
)
from CervicalAIHubLib.settings import SETTINGS, engine_environment_extra, read_settings, settings_problems
from CervicalAILib.errors import InputError
from CervicalAILib.io.case import write_case
from CervicalAILib.io.mrml import volume_node_from_image
from CervicalAILib.models.bundle import write_bundle
from CervicalAILib.resources import DEFAULT_BUNDLES
from conftest import REPO

# Versions as in a current Slicer with SlicerRadiomics and nothing else installed.
SLICER = {"numpy": "2.4.6", "SimpleITK": "2.5.5", "scipy": "1.17.1", "pydicom": "3.0.2", "pyradiomics": "3.1.0",
          "PyWavelets": "1.8.0", "pykwalify": "1.8.0", "PyYAML": "6.0.2"}  # fmt: skip
EVERYTHING = {**SLICER, "onnxruntime": "1.22.0", "matplotlib": "3.10.0", "nibabel": "5.3.2"}


def versions(table):
    return lambda name: table.get(name)


# --- Python packages -----------------------------------------------------------------------------------

def test_nothing_to_do_when_everything_is_there():
    plan = install_plan("cpu", versions(EVERYTHING), imported={"vtk": object()})
    assert plan.complete and plan.to_install == [] and not plan.restart_needed
    assert plan.message() == "All Python packages CervicalAI needs are installed."


def test_missing_packages_are_installed_but_slicers_own_are_pinned_never_replaced():
    plan = install_plan("cpu", versions(SLICER), imported={"vtk": object()})
    assert plan.to_install == ["onnxruntime>=1.18", "matplotlib>=3.8", "nibabel>=5.0"]
    assert plan.upgrades == [] and not plan.restart_needed and plan.slicer_problems == []
    assert plan.constraints == ["numpy==2.4.6", "SimpleITK==2.5.5", "scipy==1.17.1", "pydicom==3.0.2"]
    text = constraints_text(plan)
    assert "numpy==2.4.6\n" in text and "SimpleITK==2.5.5\n" in text
    assert "draws the nomogram" in plan.message() and "numpy, SimpleITK, VTK" in plan.message()
    for spec in plan.to_install:
        assert spec.split(">")[0].lower() not in {name.lower() for name in SLICER_OWN}


def test_too_old_slicer_packages_are_reported_not_upgraded():
    old = {**EVERYTHING, "numpy": "1.24.4", "pydicom": "2.4.4"}
    plan = install_plan("cpu", versions(old), imported={"vtk": object()})
    assert plan.to_install == []
    assert plan.slicer_problems == ["numpy 1.24.4 is installed; the engine needs numpy>=1.26",
                                    "pydicom 2.4.4 is installed; the engine needs pydicom>=3.0"]  # fmt: skip
    assert not plan.complete and "newer Slicer" in plan.message()
    assert "numpy==1.24.4" in plan.constraints


def test_gpu_runtime_is_chosen_only_when_no_runtime_is_installed():
    plan = install_plan("gpu", versions(SLICER), imported={"vtk": object()})
    assert GPU_RUNTIME in plan.to_install and "onnxruntime>=1.18" not in plan.to_install
    with_gpu = install_plan("cpu", versions({**EVERYTHING, "onnxruntime": None, "onnxruntime-gpu": "1.22.0"}), imported={"vtk": 1})
    assert with_gpu.complete  # the GPU runtime also serves the CPU
    cpu_kept = install_plan("gpu", versions(EVERYTHING), imported={"vtk": 1})
    assert cpu_kept.complete  # never a second runtime beside the first


def test_an_old_runtime_is_upgraded_in_place_and_asks_for_a_restart_when_loaded():
    old = {**EVERYTHING, "onnxruntime-gpu": "1.16.3", "onnxruntime": None}
    plan = install_plan("cpu", versions(old), imported={"vtk": 1, "onnxruntime": 1})
    assert plan.to_install == ["onnxruntime-gpu>=1.18"] and plan.upgrades == ["onnxruntime-gpu>=1.18"]
    assert plan.restart_needed and "restarted" in plan.message()
    assert not install_plan("cpu", versions(old), imported={"vtk": 1}).restart_needed


def test_pyradiomics_comes_from_the_extension():
    plan = install_plan("cpu", versions({**EVERYTHING, "pyradiomics": None}), imported={"vtk": 1})
    assert plan.extension_missing == ["pyradiomics (import radiomics): install the SlicerRadiomics extension"]
    assert plan.to_install == [] and "Extensions Manager" in plan.message()
    bhklab = install_plan("cpu", versions({**EVERYTHING, "pyradiomics": None, "pyradiomics-bhklab": "3.1.4"}), imported={"vtk": 1})
    assert bhklab.complete


def test_vtk_built_into_slicer_counts_as_present():
    plan = install_plan("cpu", versions(EVERYTHING), imported={"vtkmodules": 1})
    assert plan.complete and not any(pin.startswith("vtk") for pin in plan.constraints)
    missing = install_plan("cpu", versions(EVERYTHING), imported={})
    assert missing.complete  # no vtk distribution and none imported: nothing pip could (or should) do


def test_every_runtime_dependency_of_the_engine_is_accounted_for():
    """pyproject's runtime dependencies: each is installed on first use, Slicer's own, from an
    extension, or explicitly not needed in Slicer (a new engine dependency fails this test)."""
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = {Requirement(spec).name.lower() for spec in project["project"]["dependencies"]}
    known = {r.name.lower() for r in REQUIREMENTS} | {n.lower() for n in SLICER_OWN} | {n.lower() for n in FROM_EXTENSION}
    known |= {n.lower() for n in NOT_NEEDED_IN_SLICER}
    assert names - known == set()


def test_this_environment_has_everything():
    plan = install_plan("cpu")
    assert plan.to_install == [] and plan.slicer_problems == [], plan.message()


# --- settings -----------------------------------------------------------------------------------------

def test_settings_read_with_defaults_and_checked(tmp_path):
    stored = {"CervicalAI/Device": "gpu", "CervicalAI/ReviewerName": "  Dr A  "}
    values = read_settings(lambda key, default: stored.get(key, default))
    assert values == {"device": "gpu", "bundleFolder": "", "reviewerName": "Dr A", "nnunetModelFolder": ""}
    assert read_settings(lambda key, default: "quantum" if key == SETTINGS["device"].key else default)["device"] == "cpu"
    assert settings_problems(values) == [] and engine_environment_extra(values) == {}
    assert settings_problems({**values, "bundleFolder": str(tmp_path / "nowhere")}) == [f"model bundle folder {tmp_path / 'nowhere'} does not exist"]
    (tmp_path / "empty").mkdir()
    assert "holds no model bundle" in settings_problems({**values, "bundleFolder": str(tmp_path / "empty")})[0]
    (tmp_path / "models" / "x").mkdir(parents=True)
    (tmp_path / "models" / "x" / "bundle.json").write_text("{}")
    good = {**values, "bundleFolder": str(tmp_path / "models")}
    assert settings_problems(good) == []
    assert engine_environment_extra(good) == {"CERVICALAI_MODELS": str((tmp_path / "models").resolve())}
    assert settings_problems({**values, "device": "tpu"}) == ["device must be cpu or gpu, not 'tpu'"]
    assert "not a trained nnU-Net model folder" in settings_problems({**values, "nnunetModelFolder": str(tmp_path)})[0]


# --- model cards ----------------------------------------------------------------------------------------

def make_bundle(folder, name="cervix-tumor-seg-mpmri"):
    manifest = {
        "name": name, "version": "1.2.0", "task": "segmentation",
        "intended_use": "Research: tumour contour for reader review.",
        "training_data": "240 synthetic cases from the CervicalAI generator (no patient data).",
        "inputs": [{"role": "T2W"}], "outputs": [{"name": "tumor"}], "provenance": {"seed": 1},
    }  # fmt: skip
    files = {"MODEL_CARD.md": "# Tumour segmentation\nTrained on synthetic data only.\n", "weights.json": "{}"}
    return write_bundle(folder / name, manifest, files)


def test_bundle_cards_show_verified_bundles_and_why_others_are_unusable(tmp_path):
    make_bundle(tmp_path)
    tampered = make_bundle(tmp_path, DEFAULT_BUNDLES["lnm"])
    (tampered.path / "weights.json").write_text('{"changed": true}')
    cards = {card.purpose: card for card in bundle_cards(tmp_path)}
    assert list(cards) == list(DEFAULT_BUNDLES)
    seg = cards["segmentation"]
    assert seg.usable and seg.label == "cervix-tumor-seg-mpmri@1.2.0" and seg.task == "segmentation"
    assert "Trained on synthetic data only." in seg.model_card and seg.training_data.startswith("240 synthetic")
    assert not cards["lnm"].usable and "weights.json" in cards["lnm"].problem  # hash check refused it
    assert cards["encoder-2d"].problem.startswith("not installed")
    text = cards_text(list(cards.values()))
    assert "Tumour segmentation (multi-sequence): cervix-tumor-seg-mpmri@1.2.0" in text
    assert "Lymph-node metastasis risk model (DLRC): not available" in text
    assert chosen_models_dir(str(tmp_path)) == tmp_path
    assert all(not card.usable for card in bundle_cards(None))


# --- workflow state on real MRML ------------------------------------------------------------------------

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (real MRML)")

from CervicalAIHubLib.workflow import (  # noqa: E402
    STEPS,
    case_volume_files,
    mark_loaded,
    next_step,
    study_load_step,
    workflow_state,
)
from CervicalAISegmentLib.review import export_reviewed_case, mark_reviewed  # noqa: E402
from CervicalAISegmentLib.segmentation import import_segmentation_result  # noqa: E402


@pytest.mark.mrml
def test_workflow_state_follows_the_scene(tmp_path):
    scene = slicer.vtkMRMLScene()
    state = workflow_state(scene)
    assert [step.key for step in STEPS] == ["load", "segment", "review", "predict", "export"]
    assert not any(s.done for s in state.values()) and next_step(state).key == "load"

    image = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 300, (8, 20, 24)).astype(np.int16))
    t2 = volume_node_from_image(scene, image, "T2")
    mark_loaded(t2, "T2W")
    state = workflow_state(scene)
    assert state["load"].done and state["load"].detail == "1 volume(s) loaded" and next_step(state).key == "segment"

    mask = np.zeros((8, 20, 24), np.uint8)
    mask[2:5, 5:10, 6:12] = 1
    mask_image = sitk.GetImageFromArray(mask)
    mask_image.CopyInformation(image)
    (tmp_path / "seg").mkdir()
    sitk.WriteImage(mask_image, str(tmp_path / "seg" / "tumor.nii.gz"))
    (tmp_path / "seg" / "segmentation.json").write_text(json.dumps({"flagged_slices": [], "model": {"label": "m@1"}}))
    result = import_segmentation_result(scene, tmp_path / "seg", t2)
    state = workflow_state(scene)
    assert state["segment"].done and not state["review"].done and next_step(state).key == "review"
    assert state["load"].detail == "1 volume(s) loaded"  # the probability map is an output, not a study volume

    review = mark_reviewed(scene, result.draft, "R", tmp_path / "review")
    state = workflow_state(scene)
    assert state["review"].done and state["review"].detail == f"reviewed: {review.reviewed.GetName()}"
    assert next_step(state).key == "predict"

    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "SYN readout")
    table.SetAttribute("CervicalAI.Status", "readout")
    assert workflow_state(scene)["predict"].done

    out = export_reviewed_case(review.reviewed, tmp_path / "export" / "case")
    state = workflow_state(scene)
    assert state["export"].done and str(out.resolve()) in state["export"].detail
    assert next_step(state) is None


def test_loading_a_study_folder(tmp_path):
    image = sitk.Image([6, 6, 3], sitk.sitkInt16)
    case = write_case(tmp_path / "case", {"T2W": image, "DWI": image})
    files = case_volume_files(case)
    assert files == {"T2W": case / "T2W.nii.gz", "DWI": case / "DWI.nii.gz"}
    with pytest.raises(InputError, match="not a case folder"):
        case_volume_files(tmp_path)
    step = study_load_step("/bin/PythonSlicer", tmp_path, tmp_path / "out")
    assert step.command == ["/bin/PythonSlicer", "-m", "CervicalAILib.cli", "study", "register", str(tmp_path), "--out", str(tmp_path / "out")]
    with pytest.raises(InputError, match="study folder not found"):
        study_load_step("p", tmp_path / "missing", tmp_path / "out")


@pytest.mark.mrml
def test_mark_loaded_refuses_unknown_roles():
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    with pytest.raises(InputError, match="unknown sequence role 'T1'"):
        mark_loaded(node, "T1")
