"""contracts/case_folder.py: the grid a case folder's sequences are on, and the refusal of native-grid steps."""

import json

import pytest

from CervicalAILib.contracts.case_folder import (
    CASE_FILE,
    CaseManifest,
    Grid,
    read_manifest,
    require_native_grids,
)
from CervicalAILib.core.errors import InputError


def test_the_reading_rule_case_json_then_registration_json_then_native(tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    assert read_manifest(folder).grid is Grid.NATIVE
    (folder / "registration.json").write_text(json.dumps({"source": "/data/study-7", "reference": "T2W"}))
    assert read_manifest(folder) == CaseManifest(Grid.T2W, "/data/study-7")
    written = CaseManifest(Grid.NATIVE, None, {"T2W": "ab" * 32})
    (folder / CASE_FILE).write_text(json.dumps(written.to_dict()))
    assert read_manifest(folder) == written  # case.json wins over registration.json


@pytest.mark.parametrize("document,message", [
    ({"grid": "T2W"}, "is not a CervicalAI case manifest"),
    ({"schema": "cervicalai.case/1", "grid": "DWI"}, "grid 'DWI' is not one of native, T2W"),
    ({"schema": "cervicalai.case/1", "grid": "T2W", "native_source": 3}, "native_source must be a path"),
    ({"schema": "cervicalai.case/1", "grid": "T2W", "native_sha256": {"T2W": 1}}, "native_sha256 must map"),
])
def test_a_malformed_case_json_is_one_line_naming_the_file(tmp_path, document, message):
    (tmp_path / CASE_FILE).write_text(json.dumps(document))
    with pytest.raises(InputError, match=message) as raised:
        read_manifest(tmp_path)
    assert raised.value.path == tmp_path / CASE_FILE


def test_only_a_t2w_grid_folder_is_refused_and_the_advice_names_the_native_source(tmp_path):
    require_native_grids(tmp_path)  # no case.json, no registration.json: native
    require_native_grids(tmp_path / "study.dcm")  # not a folder: a DICOM or image file is native
    (tmp_path / CASE_FILE).write_text(json.dumps(CaseManifest(Grid.T2W, "/data/native").to_dict()))
    with pytest.raises(InputError) as raised:
        require_native_grids(tmp_path)
    assert str(raised.value).endswith(f"use the native study /data/native with --transforms {tmp_path}")
    with pytest.raises(InputError, match="radiomics are computed .*: list /data/native instead$"):
        require_native_grids(tmp_path, "radiomics", "list {native} instead")
