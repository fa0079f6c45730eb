"""The hub's logic (CervicalAIHubLib): dependency plan, settings, model cards, workflow state on real MRML."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAIHubLib.bundles import (
    PREDICT_PURPOSES,
    SEGMENT_PURPOSES,
    bundle_cards,
    cards_text,
    chosen_models_dir,
    model_problems,
)
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
from CervicalAILib.bundles.catalog import default_entry, default_purposes
from CervicalAILib.bundles.format import write_bundle
from CervicalAILib.core.errors import InputError
from CervicalAILib.io.case import write_case
from CervicalAILib.io.mrml import volume_node_from_image
from conftest import REPO, slicer_versions

# What each Slicer's Python holds: its bundled packages and built-in VTK (exact pins read from its
# source, requirements/compat/slicer-<version>.txt) plus what SlicerRadiomics adds.
SUPPORTED = slicer_versions.SUPPORTED
HUB_INSTALLS = {"onnxruntime": "1.31.1", "pyyaml": "6.0.3", "matplotlib": "3.11.2", "nibabel": "5.4.2", "trimesh": "5.2.0"}


def versions(table):
    found = {slicer_versions.normalise(name): version for name, version in table.items() if version is not None}
    return lambda name: found.get(slicer_versions.normalise(name))


def test_the_pin_files_are_read_from_slicer_and_say_what_each_version_ships():
    """Spot checks against Slicer's SuperBuild files (tags v5.8.1, v5.10.0, v5.12.3, main)."""
    assert {v: slicer_versions.header(v)["python"] for v in slicer_versions.known_versions()} == {
        "5.8": "3.9.10", "5.10": "3.12.10", "5.12": "3.12.10", "5.13": "3.12.10"}
    ships = {v: {name: slicer_versions.bundled(v, with_extension=False)[name] for name in ("numpy", "scipy", "pydicom", "simpleitk", "vtk")}
             for v in slicer_versions.known_versions()}  # fmt: skip
    assert ships["5.8"] == {"numpy": "1.26.4", "scipy": "1.13.1", "pydicom": "2.4.4", "simpleitk": "2.3.1", "vtk": "9.2.20230607"}
    assert ships["5.10"] == {"numpy": "2.0.2", "scipy": "1.13.1", "pydicom": "2.4.4", "simpleitk": "2.5.2", "vtk": "9.5.2"}
    assert ships["5.12"] == ships["5.13"] == {"numpy": "2.4.6", "scipy": "1.17.1", "pydicom": "3.0.2", "simpleitk": "2.5.5", "vtk": "9.6.2"}
    assert "highdicom" not in slicer_versions.bundled("5.10") and slicer_versions.bundled("5.12")["highdicom"] == "0.27.0"
    assert slicer_versions.header("5.8")["supported"] == "no"
    assert all(slicer_versions.header(v)["supported"] == "yes" for v in SUPPORTED)


@pytest.mark.parametrize("slicer_version", SUPPORTED)
def test_each_supported_slicer_needs_only_pip_only_packages(slicer_version):
    """With the Slicer's own packages and SlicerRadiomics, the plan installs only what Slicer lacks,
    pins every Slicer package it found at its installed version, and reports no problem."""
    shipped = slicer_versions.bundled(slicer_version)
    plan = install_plan("cpu", versions(shipped), imported={"vtk": object()})
    assert plan.slicer_problems == [] and plan.extension_missing == [], plan.message()
    assert plan.to_install == ["onnxruntime>=1.18", "PyYAML>=6.0", "matplotlib>=3.8", "nibabel>=5.0", "trimesh>=4.0"]
    for spec in plan.to_install:
        assert slicer_versions.normalise(spec.split(">")[0]) not in shipped  # nothing Slicer ships is (re)installed
    expected = [f"{name}=={shipped[slicer_versions.normalise(name)]}" for name in SLICER_OWN]
    assert plan.constraints == expected
    text = constraints_text(plan)
    assert f"numpy=={shipped['numpy']}\n" in text and f"pydicom=={shipped['pydicom']}\n" in text
    assert "draws the nomogram" in plan.message() and "numpy, SimpleITK, VTK, scipy, pydicom and packaging" in plan.message()
    after = install_plan("cpu", versions({**shipped, **HUB_INSTALLS}), imported={"vtk": object()})
    assert after.complete and after.to_install == [] and not after.restart_needed
    assert after.message() == "All Python packages CervicalAI needs are installed."


def test_slicer_5_8_is_refused_with_the_packages_that_are_too_old():
    plan = install_plan("cpu", versions({**slicer_versions.bundled("5.8"), **HUB_INSTALLS}), imported={"vtk": object()})
    assert plan.to_install == []
    assert plan.slicer_problems == ["numpy 1.26.4 is installed; the engine needs numpy>=2.0",
                                    "SimpleITK 2.3.1 is installed; the engine needs SimpleITK>=2.5"]  # fmt: skip
    assert not plan.complete and "newer Slicer" in plan.message()
    assert "numpy==1.26.4" in plan.constraints


def test_gpu_runtime_is_chosen_only_when_no_runtime_is_installed():
    shipped = slicer_versions.bundled("5.12")
    plan = install_plan("gpu", versions(shipped), imported={"vtk": object()})
    assert GPU_RUNTIME in plan.to_install and "onnxruntime>=1.18" not in plan.to_install
    everything = {**shipped, **HUB_INSTALLS}
    with_gpu = install_plan("cpu", versions({**everything, "onnxruntime": None, "onnxruntime-gpu": "1.22.0"}), imported={"vtk": 1})
    assert with_gpu.complete  # the GPU runtime also serves the CPU
    cpu_kept = install_plan("gpu", versions(everything), imported={"vtk": 1})
    assert cpu_kept.complete  # never a second runtime beside the first


def test_an_old_runtime_is_upgraded_in_place_and_asks_for_a_restart_when_loaded():
    old = {**slicer_versions.bundled("5.10"), **HUB_INSTALLS, "onnxruntime-gpu": "1.16.3", "onnxruntime": None}
    plan = install_plan("cpu", versions(old), imported={"vtk": 1, "onnxruntime": 1})
    assert plan.to_install == ["onnxruntime-gpu>=1.18"] and plan.upgrades == ["onnxruntime-gpu>=1.18"]
    assert plan.restart_needed and "restarted" in plan.message()
    assert not install_plan("cpu", versions(old), imported={"vtk": 1}).restart_needed


def test_pyradiomics_comes_from_the_extension():
    without = {**slicer_versions.bundled("5.10", with_extension=False), **HUB_INSTALLS, "pywavelets": "1.9.0", "pykwalify": "1.8.0"}
    plan = install_plan("cpu", versions(without), imported={"vtk": 1})
    assert plan.extension_missing == ["pyradiomics (import radiomics): install the SlicerRadiomics extension"]
    assert plan.to_install == [] and "Extensions Manager" in plan.message()
    slicer_radiomics = install_plan("cpu", versions({**without, "pyradiomics": "3.1.0.post2"}), imported={"vtk": 1})
    assert slicer_radiomics.complete  # SlicerRadiomics' own build (pyradiomics 3.1.0+2) counts too


def test_vtk_built_into_slicer_counts_as_present():
    everything = {**slicer_versions.bundled("5.12"), **HUB_INSTALLS, "vtk": None}
    plan = install_plan("cpu", versions(everything), imported={"vtkmodules": 1})
    assert plan.complete and not any(pin.startswith("vtk") for pin in plan.constraints)
    missing = install_plan("cpu", versions(everything), imported={})
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
    tampered = make_bundle(tmp_path, default_entry("lnm").folder)
    (tampered.path / "weights.json").write_text('{"changed": true}')
    cards = {card.purpose: card for card in bundle_cards(tmp_path)}
    assert list(cards) == default_purposes() == ["segmentation", "segmentation-t2", "encoder-2d", "encoder-3d", "lnm",
                                                 "lnm-no-contrast", "stage_group"]  # the workflow's order, from the catalogue
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


def test_model_problems_name_the_unusable_bundles_a_step_needs(tmp_path):
    """What the gate of Apply/Compute (and the self-tests) reports about the models."""
    make_bundle(tmp_path)
    tampered = make_bundle(tmp_path, default_entry("lnm").folder)
    (tampered.path / "weights.json").write_text('{"changed": true}')
    assert model_problems(tmp_path, ("segmentation",)) == []
    problems = model_problems(tmp_path, PREDICT_PURPOSES)
    assert len(problems) == 3
    assert any(problem.startswith("Lymph-node metastasis risk model (DLRC): not available") and "weights.json" in problem
               for problem in problems)  # fmt: skip
    assert any(problem.startswith("Deep-feature encoder (2D): not available (not installed") for problem in problems)
    assert model_problems(tmp_path, SEGMENT_PURPOSES) == [f"Tumour segmentation (T2WI only, fallback): not available "
                                                          f"(not installed ({tmp_path / 'cervix-tumor-seg-t2'} has no bundle.json))"]  # fmt: skip
    with pytest.raises(ValueError, match="unknown bundle purpose"):
        model_problems(tmp_path, ("lung",))
    assert model_problems(chosen_models_dir(""), SEGMENT_PURPOSES + PREDICT_PURPOSES) == []  # the shipped bundles


# --- workflow state on real MRML ------------------------------------------------------------------------

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (real MRML)")

from CervicalAIHubLib.reviewed import export_reviewed_case  # noqa: E402
from CervicalAIHubLib.segmentation import import_segmentation_result  # noqa: E402
from CervicalAIHubLib.workflow import (  # noqa: E402
    STEPS,
    case_volume_files,
    mark_loaded,
    next_step,
    study_load_step,
    workflow_state,
)
from CervicalAISegmentLib.review import mark_reviewed  # noqa: E402


def import_box_result(scene, t2, image, folder):
    """A `cervicalai segment` output with a box tumour on the T2WI grid, imported into the scene."""
    mask = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint8)
    mask[2:4, 5:9, 6:10] = 1
    mask_image = sitk.GetImageFromArray(mask)
    mask_image.CopyInformation(image)
    folder.mkdir()
    sitk.WriteImage(mask_image, str(folder / "tumor.nii.gz"))
    (folder / "segmentation.json").write_text(json.dumps({"flagged_slices": [], "model": {"label": "m@1"}}))
    return import_segmentation_result(scene, folder, t2)


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

    result = import_box_result(scene, t2, image, tmp_path / "seg")
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


@pytest.mark.mrml
def test_the_latest_reviewed_copy_and_the_case_clinical_values_reach_the_export(tmp_path):
    """The hub exports the newest intact reviewed copy with the clinical values the Predict module recorded
    on the case's T2WI (scene.CLINICAL_VALUES), read without the Predict module."""
    from CervicalAIHubLib.reviewed import latest_reviewed
    from CervicalAIHubLib.scene import CLINICAL_VALUES, clinical_values, record_clinical_values

    scene = slicer.vtkMRMLScene()
    image = sitk.GetImageFromArray(np.random.default_rng(1).integers(0, 300, (6, 16, 18)).astype(np.int16))
    t2 = volume_node_from_image(scene, image, "T2")
    other = volume_node_from_image(scene, image, "other patient T2")
    result = import_box_result(scene, t2, image, tmp_path / "seg")
    assert latest_reviewed(scene) is None
    first = mark_reviewed(scene, result.draft, "R", tmp_path / "r1").reviewed
    second = mark_reviewed(scene, result.draft, "S", tmp_path / "r2").reviewed
    assert latest_reviewed(scene) is second

    assert clinical_values(t2) == {}
    # the form was filled while the draft was selected: recorded on the case's T2WI, not on another volume
    assert record_clinical_values(result.draft, json.dumps({"age": 51, "scc_ag": None}), t2=other) is t2
    assert t2.GetAttribute(CLINICAL_VALUES) == '{"age": 51, "scc_ag": null}' and not other.GetAttribute(CLINICAL_VALUES)
    assert clinical_values(t2) == {"age": 51}  # empty fields are left out
    bare = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")  # not made by CervicalAI: the selected T2WI
    assert record_clinical_values(bare, '{"age": 60}', t2=other) is other and clinical_values(other) == {"age": 60}
    assert record_clinical_values(bare, '{"age": 60}') is None
    other.SetAttribute(CLINICAL_VALUES, "{not json")
    with pytest.raises(InputError, match="'other patient T2': stored clinical values are not valid JSON"):
        clinical_values(other)

    out = export_reviewed_case(second, tmp_path / "export", clinical=clinical_values(t2) or None)
    assert json.loads((out / "clinical.json").read_text())["age"] == 51
    assert first.GetAttribute("CervicalAI.ExportedTo") == "" or first.GetAttribute("CervicalAI.ExportedTo") is None


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
