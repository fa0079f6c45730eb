"""nnU-Net v2 export: nnU-Net's own integrity check, channels, review filter, atomic folders, bad input."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError, OutputExistsError
from CervicalAILib.export import nnunet as nnunet_module
from CervicalAILib.export.manifest import verify_manifest
from CervicalAILib.export.nnunet import check_nnunet_dataset, export_nnunet
from CervicalAILib.io.case import write_case
from CervicalAILib.io.geometry import same_grid
from CervicalAILib.review.record import mark_reviewed


def _image(array: np.ndarray, spacing, origin=(-40.0, -30.0, -10.0), direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def make_case(folder: Path, name: str, roles=("T2W", "ADC", "DWI"), seed: int = 0, reviewed: bool | None = True,
              label_on_other_grid: bool = False, clinical: dict | None = None) -> Path:
    """A small case folder: T2W 24x20x8 (1.5 x 1.5 x 4 mm), other sequences on a coarser grid
    over the same space, a box tumour; reviewed by a reader unless `reviewed` is False/None."""
    rng = np.random.default_rng(seed)
    t2_array = rng.integers(100, 400, size=(8, 20, 24)).astype(np.int16)
    t2 = _image(t2_array, (1.5, 1.5, 4.0))
    images = {"T2W": t2}
    for role in roles:
        if role != "T2W":
            images[role] = _image(rng.normal(800, 50, size=(8, 10, 12)).astype(np.float32), (3.0, 3.0, 4.0))
    tumour = np.zeros((8, 20, 24), np.uint8)
    tumour[2:6, 6 + seed % 3:12, 8:15] = 1
    label = _image(tumour, (1.5, 1.5, 4.0))
    if label_on_other_grid:  # the same tumour on a finer in-plane grid
        label = sitk.Resample(label, _image(np.zeros((8, 40, 48), np.uint8), (0.75, 0.75, 4.0),
                                            origin=(-40.375, -30.375, -10.0)), sitk.Transform(), sitk.sitkNearestNeighbor)
    path = write_case(folder / name, images, labels={"tumor": label}, clinical=clinical or {"case_id": name})
    if reviewed:
        mark_reviewed(path / "labels" / "tumor.nii.gz", "Dr Reader", automatic_mask=label if seed % 2 else None,
                      automatic_model="cervix-seg@1.0" if seed % 2 else None)
    return path


@pytest.fixture
def cases(tmp_path):
    return [
        make_case(tmp_path / "in", "CASE-1", seed=0),
        make_case(tmp_path / "in", "CASE-2", roles=("T2W", "ADC", "DWI", "CET1"), seed=1),
        make_case(tmp_path / "in", "CASE-3", roles=("T2W", "ADC"), seed=2),
    ]


def nnunet_verify(folder: Path, monkeypatch) -> None:
    """Run nnU-Net's own verify_dataset_integrity on `folder` (raises when nnU-Net rejects it).

    nnunetv2 is part of the test environment (requirements/nnunet-nodeps.txt), so a failing import
    fails the test rather than skipping it. nnU-Net's per-case checks run in a thread pool instead
    of spawned processes (the same functions; a spawned process would import torch again, ~10 s).
    """
    from multiprocessing.pool import ThreadPool

    from nnunetv2.experiment_planning import verify_dataset_integrity as module


    monkeypatch.setattr(module, "multiprocessing", types.SimpleNamespace(
        get_context=lambda method: types.SimpleNamespace(Pool=ThreadPool)))
    module.verify_dataset_integrity(str(folder), num_processes=1)


def test_dataset_passes_nnunets_own_integrity_check(tmp_path, cases, monkeypatch):
    result = export_nnunet(cases, tmp_path / "raw", 501, "CervixTumour", registration="none")
    folder = tmp_path / "raw" / "Dataset501_CervixTumour"
    assert result.path == folder
    # CET1 only in one case, DWI missing in CASE-3: the common channels are T2W and ADC
    assert result.channels == ["T2W", "ADC"]
    assert any("DWI, CET1" in w for w in result.warnings)
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "T2W", "1": "ADC"}
    assert dataset["labels"] == {"background": 0, "tumor": 1}
    assert dataset["numTraining"] == 3 and dataset["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        f"CASE-{i}_{c:04d}.nii.gz" for i in (1, 2, 3) for c in (0, 1)]
    # channel 0 is the T2WI itself, voxel for voxel; every channel and the label share its grid
    t2 = sitk.ReadImage(str(cases[0] / "T2W.nii.gz"))
    exported = sitk.ReadImage(str(folder / "imagesTr" / "CASE-1_0000.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(exported), sitk.GetArrayFromImage(t2))
    adc = sitk.ReadImage(str(folder / "imagesTr" / "CASE-1_0001.nii.gz"))
    label = sitk.ReadImage(str(folder / "labelsTr" / "CASE-1.nii.gz"))
    assert same_grid(adc, t2) and same_grid(label, t2)
    assert set(np.unique(sitk.GetArrayFromImage(label))) == {0, 1}
    assert int(sitk.GetArrayFromImage(label).sum()) == 4 * 6 * 7
    assert check_nnunet_dataset(folder) == []
    nnunet_verify(folder, monkeypatch)
    # the manifest lists every file with its hash, and the provenance of each mask
    assert verify_manifest(folder / "manifest.json") == []
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {p.relative_to(folder).as_posix() for p in folder.rglob("*")
                                      if p.is_file() and p.name != "manifest.json"}
    by_case = {c["case"]: c for c in manifest["cases"]}
    assert by_case["CASE-1"]["mask"]["algorithm_type"] == "MANUAL"
    assert by_case["CASE-2"]["mask"]["algorithm_type"] == "MANUAL"  # automatic contour accepted unchanged
    assert by_case["CASE-2"]["mask"]["origin"] == "automatic"
    assert by_case["CASE-2"]["mask"]["automatic_model"] == "cervix-seg@1.0"
    assert by_case["CASE-2"]["mask"]["reviewer"] == "Dr Reader"
    assert manifest["tool"]["name"] == "cervicalai" and manifest["dataset"]["channels"] == ["T2W", "ADC"]


def test_rigid_registration_brings_sequences_onto_the_t2_grid(tmp_path):
    from CervicalAILib.research.synth import SynthParams, generate_case
    from CervicalAILib.research.synth.writer import write_case_folder

    case = generate_case(0, seed=3, params=SynthParams(matrix_scale=0.3))
    folder = write_case_folder(case, tmp_path / "SYN")
    mark_reviewed(folder / "labels" / "tumor.nii.gz", "Dr Reader")
    result = export_nnunet([folder], tmp_path / "raw", 7, "Synth", channels=["T2W", "ADC", "CET1"], max_seconds=20)
    t2 = sitk.ReadImage(str(folder / "T2W.nii.gz"))
    for index in range(3):
        image = sitk.ReadImage(str(result.path / "imagesTr" / f"SYN_{index:04d}.nii.gz"))
        assert same_grid(image, t2)
    manifest = json.loads((result.path / "manifest.json").read_text())
    registration = manifest["cases"][0]["registration"]
    assert set(registration) == {"ADC", "CET1"} and registration["ADC"]["method"].startswith("rigid")
    assert check_nnunet_dataset(result.path) == []


def test_explicit_channels_exclude_cases_lacking_one(tmp_path, cases):
    result = export_nnunet(cases, tmp_path / "raw", 12, "T2ADCDWI", channels=["DWI", "T2W", "ADC"],
                           registration="none")
    assert result.channels == ["T2W", "ADC", "DWI"]
    assert result.cases == ["CASE-1", "CASE-2"]
    assert result.excluded == [{"case": "CASE-3", "reason": "lacks DWI"}]
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["excluded"] == [{"case": "CASE-3", "reason": "lacks DWI"}]
    assert check_nnunet_dataset(result.path) == []
    with pytest.raises(InputError, match="channels must include T2W"):
        export_nnunet(cases, tmp_path / "raw2", 13, "X", channels=["ADC"])


def test_reviewed_only_excludes_cases_without_a_valid_review(tmp_path, cases):
    unreviewed = make_case(tmp_path / "in", "CASE-4", seed=4, reviewed=False)
    edited = make_case(tmp_path / "in", "CASE-5", seed=6)
    mask_path = edited / "labels" / "tumor.nii.gz"
    mask = sitk.ReadImage(str(mask_path))
    array = sitk.GetArrayFromImage(mask)
    array[3, 2, 2] = 1  # edited after the review: the record no longer describes the mask
    changed = sitk.GetImageFromArray(array)
    changed.CopyInformation(mask)
    sitk.WriteImage(changed, str(mask_path))
    result = export_nnunet(cases + [unreviewed, edited], tmp_path / "raw", 20, "Reviewed", reviewed_only=True,
                           registration="none")
    assert result.cases == ["CASE-1", "CASE-2", "CASE-3"]
    assert {e["case"] for e in result.excluded} == {"CASE-4", "CASE-5"}
    assert all("review" in e["reason"] for e in result.excluded)
    # without the filter they go in
    everything = export_nnunet(cases + [unreviewed], tmp_path / "raw", 21, "All", registration="none")
    assert "CASE-4" in everything.cases
    with pytest.raises(InputError, match="no case left to export.*CASE-4.*review"):
        export_nnunet([unreviewed], tmp_path / "raw", 22, "None", reviewed_only=True)


def test_existing_folder_needs_overwrite_and_is_replaced_whole(tmp_path, cases):
    first = export_nnunet(cases, tmp_path / "raw", 30, "Again", registration="none")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_nnunet(cases[:1], tmp_path / "raw", 30, "Again", registration="none")
    assert json.loads((first.path / "dataset.json").read_text())["numTraining"] == 3
    export_nnunet(cases[:1], tmp_path / "raw", 30, "Again", registration="none", overwrite=True)
    assert json.loads((first.path / "dataset.json").read_text())["numTraining"] == 1
    assert sorted(p.name for p in (first.path / "labelsTr").iterdir()) == ["CASE-1.nii.gz"]
    with pytest.raises(InputError, match="already used by Dataset030_Again"):
        export_nnunet(cases, tmp_path / "raw", 30, "Other", registration="none")


def test_a_crash_leaves_no_half_data_set(tmp_path, cases, monkeypatch):
    original = nnunet_module._write_case
    calls = []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(nnunet_module, "_write_case", crash_on_second)
    with pytest.raises(RuntimeError, match="disk full"):
        export_nnunet(cases, tmp_path / "raw", 40, "Crash", registration="none")
    assert list((tmp_path / "raw").iterdir()) == []  # neither the data set nor a temporary folder


def test_label_on_another_grid_is_resampled_with_a_warning(tmp_path):
    case = make_case(tmp_path / "in", "FINE", label_on_other_grid=True)
    result = export_nnunet([case], tmp_path / "raw", 50, "Fine", registration="none")
    label = sitk.ReadImage(str(result.path / "labelsTr" / "FINE.nii.gz"))
    assert same_grid(label, sitk.ReadImage(str(case / "T2W.nii.gz")))
    assert int(sitk.GetArrayFromImage(label).sum()) == 4 * 6 * 7  # the same tumour, voxel for voxel
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert any("resampled" in w for w in manifest["cases"][0]["warnings"])


def test_bad_input_is_refused_clearly(tmp_path, cases):
    with pytest.raises(InputError, match="1 to 999"):
        export_nnunet(cases, tmp_path / "raw", 1000, "X")
    with pytest.raises(InputError, match="no spaces"):
        export_nnunet(cases, tmp_path / "raw", 5, "bad name")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a case folder"):
        export_nnunet([tmp_path / "empty"], tmp_path / "raw", 5, "X")
    with pytest.raises(InputError, match="lies inside the input"):  # the data set would be written into the input
        export_nnunet([tmp_path], tmp_path / "raw", 5, "X")
    no_label = write_case(tmp_path / "in" / "NOLABEL", {"T2W": sitk.ReadImage(str(cases[0] / "T2W.nii.gz"))})
    result = export_nnunet(cases[:1] + [no_label], tmp_path / "raw", 6, "X", registration="none")
    assert result.excluded == [{"case": "NOLABEL", "reason": "no tumour label (labels/tumor.nii.gz)"}]


def test_the_checker_finds_what_nnunet_rejects(tmp_path, cases, monkeypatch):
    result = export_nnunet(cases, tmp_path / "raw", 60, "Broken", registration="none")
    (result.path / "imagesTr" / "CASE-2_0001.nii.gz").unlink()
    label_path = result.path / "labelsTr" / "CASE-3.nii.gz"
    label = sitk.ReadImage(str(label_path))
    sitk.WriteImage(label * 2, str(label_path))
    problems = check_nnunet_dataset(result.path)
    assert any("CASE-2: channel 0001 missing" in p for p in problems)
    assert any("CASE-3: unexpected label values [2]" in p for p in problems)
    with pytest.raises((AssertionError, RuntimeError, FileNotFoundError)):
        nnunet_verify(result.path, monkeypatch)


def _add_organs(case: Path, table: dict, fine_grid: bool = False) -> None:
    """labels/organs.nii.gz + organs.json in the generator's layout: stroma (5) and canal (6) make up
    the cervix around the tumour box, the bladder (9) sits in front; on a finer grid if asked."""
    organs = np.zeros((8, 20, 24), np.uint8)
    organs[1:7, 4:14, 6:17] = 5
    organs[3:5, 8:10, 10:12] = 6
    organs[1:7, 15:19, 6:17] = 9
    image = _image(organs, (1.5, 1.5, 4.0))
    if fine_grid:
        image = sitk.Resample(image, _image(np.zeros((8, 40, 48), np.uint8), (0.75, 0.75, 4.0),
                                            origin=(-40.375, -30.375, -10.0)), sitk.Transform(), sitk.sitkNearestNeighbor)
    sitk.WriteImage(image, str(case / "labels" / "organs.nii.gz"))
    (case / "labels" / "organs.json").write_text(json.dumps(table))


GENERATOR_TABLE = {"labels": {"5": {"name": "stroma", "group": "cervix"}, "6": {"name": "canal", "group": "cervix"},
                              "9": {"name": "Urinary Bladder"}}}


def test_organs_are_labelled_by_name_under_the_tumour(tmp_path, monkeypatch):
    first = make_case(tmp_path / "in", "CASE-1", roles=("T2W",), seed=0)
    second = make_case(tmp_path / "in", "CASE-2", roles=("T2W",), seed=1)
    no_organs = make_case(tmp_path / "in", "CASE-3", roles=("T2W",), seed=2)
    no_bladder = make_case(tmp_path / "in", "CASE-4", roles=("T2W",), seed=0)
    _add_organs(first, GENERATOR_TABLE)
    _add_organs(second, GENERATOR_TABLE, fine_grid=True)  # resampled onto the T2WI grid
    _add_organs(no_bladder, {"5": "cervix"})
    result = export_nnunet([first, second, no_organs, no_bladder], tmp_path / "raw", 502, "CervixOrgans",
                           structures=["Cervix", "bladder"])
    dataset = json.loads((result.path / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "tumor": 1, "cervix": 2, "bladder": 3}
    assert "cervix, bladder" in dataset["description"]
    assert result.cases == ["CASE-1", "CASE-2"]
    reasons = {e["case"]: e["reason"] for e in result.excluded}
    assert "no organ label map (labels/organs.nii.gz)" in reasons["CASE-3"]
    assert "has no bladder" in reasons["CASE-4"]
    for case in (first, second):
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(result.path / "labelsTr" / f"{case.name}.nii.gz")))
        tumour = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels" / "tumor.nii.gz"))) > 0
        assert np.array_equal(label == 1, tumour)  # the tumour wins over the cervix it lies in
        cervix = np.zeros_like(tumour)
        cervix[1:7, 4:14, 6:17] = True  # stroma and canal: one structure
        assert np.array_equal(label == 2, cervix & ~tumour)
        assert int((label == 3).sum()) == 6 * 4 * 11
    manifest = json.loads((result.path / "manifest.json").read_text())
    entry = {c["case"]: c for c in manifest["cases"]}["CASE-1"]
    assert entry["organ_voxels"] == {"cervix": 6 * 10 * 11 - 4 * 6 * 7, "bladder": 6 * 4 * 11}
    assert manifest["dataset"]["labels"] == dataset["labels"]
    assert check_nnunet_dataset(result.path) == []
    nnunet_verify(result.path, monkeypatch)
    with pytest.raises(InputError, match="'tumour' is given twice or is the tumour"):
        export_nnunet([first], tmp_path / "raw2", 503, "X", structures=["cervix", "tumour"])
