"""The model catalogue as the one list of the models: defaults, aliases, the hub's titles, the encoder a risk model names."""

from __future__ import annotations

import json
import shutil

import pytest

from CervicalAILib.bundles.catalog import (
    alias_entry,
    catalog_document,
    default_entry,
    default_purposes,
    parse_catalog,
)
from CervicalAILib.bundles.defaults import default_bundle_path, find_bundle, resolve_bundle
from CervicalAILib.bundles.format import load_bundle, write_bundle
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.core.hashing import sha256_file
from conftest import REPO

MODELS = REPO / "Resources" / "Models"


@pytest.fixture(autouse=True)
def _shipped_models_only(monkeypatch):
    monkeypatch.delenv("CERVICALAI_MODELS", raising=False)


def own_bundle(folder, name="site-encoder", task="encoder", version="2.0.0"):
    manifest = {"name": name, "version": version, "task": task, "intended_use": "tests only",
                "training_data": "synthetic data; not for clinical use", "inputs": {"roles": ["T2W"]},
                "outputs": [{"name": "features"}], "provenance": {"seed": 1}}  # fmt: skip
    return write_bundle(folder, manifest, {"MODEL_CARD.md": "# card\n"})


def test_each_purpose_has_its_shipped_default_in_the_workflows_order():
    assert default_purposes() == ["segmentation", "segmentation-t2", "encoder-2d", "encoder-3d", "lnm", "lnm-no-contrast",
                                  "stage_group"]
    folders = {purpose: default_entry(purpose).folder for purpose in default_purposes()}
    assert folders == {"segmentation": "cervix-tumor-seg-mpmri", "segmentation-t2": "cervix-tumor-seg-t2",
                       "encoder-2d": "tumor-encoder-resnet2d", "encoder-3d": "tumor-encoder-resnet3d",
                       "lnm": "dlrc-lnm", "lnm-no-contrast": "dlrc-lnm-no-contrast",
                       "stage_group": "dlrc-stage-group"}  # fmt: skip
    assert default_entry("encoder-2d").title == "Deep-feature encoder (2D)"
    assert default_bundle_path("lnm") == MODELS / "dlrc-lnm"
    with pytest.raises(BundleError) as error:
        default_entry("lung")
    assert str(error.value) == ("unknown default bundle 'lung' (known: segmentation, segmentation-t2, encoder-2d, "
                                "encoder-3d, lnm, lnm-no-contrast, stage_group)")


def test_an_alias_or_a_folder_names_an_encoder_and_anything_else_is_one_line(tmp_path):
    assert resolve_bundle("2d", "encoder") == MODELS / "tumor-encoder-resnet2d"
    assert resolve_bundle(" 3D ", "encoder") == MODELS / "tumor-encoder-resnet3d"  # as the command line gives it
    assert alias_entry("2d", "segmentation") is None  # an alias names a bundle of its task only
    own = own_bundle(tmp_path / "mine")
    assert resolve_bundle(str(own.path), "encoder") == own.path
    assert load_bundle(resolve_bundle(own.path, "encoder")).source == "user-supplied"
    with pytest.raises(InputError) as error:
        resolve_bundle("4d", "encoder")
    assert str(error.value) == ("4d: encoder bundle folder not found (known names: 2d (tumor-encoder-resnet2d@2.0.0), "
                                "3d (tumor-encoder-resnet3d@2.0.0))")


def test_the_encoder_a_risk_model_names_is_found_shipped_or_in_the_site_folder(tmp_path, monkeypatch):
    entry = default_entry("encoder-2d")
    shipped = find_bundle(entry.name, entry.version, entry.bundle_json_sha256, "encoder")
    assert shipped.path == MODELS / entry.folder and shipped.source == "shipped"
    assert find_bundle(entry.name, entry.version, None, "encoder").path == MODELS / entry.folder
    with pytest.raises(BundleError) as error:
        find_bundle(entry.name, entry.version, "0" * 64, "encoder", "the risk model (dl-resnet2d features)")
    assert str(error.value) == ("encoder tumor-encoder-resnet2d@2.0.0 (bundle.json sha256 000000000000...) used by the "
                                "risk model (dl-resnet2d features) was not found: not in the model catalogue")
    with pytest.raises(BundleError, match="does not name the encoder bundle it needs"):
        find_bundle(None, None, None, "encoder")
    site = tmp_path / "site"
    own = own_bundle(site / "mine")
    own_bundle(site / "other", name="site-encoder", version="1.0.0")  # same name, another version
    monkeypatch.setenv("CERVICALAI_MODELS", str(site))
    found = find_bundle("site-encoder", "2.0.0", sha256_file(own.path / "bundle.json"), "encoder")
    assert found.path == own.path and found.source == "user-supplied"
    assert find_bundle(entry.name, entry.version, entry.bundle_json_sha256, "encoder").source == "shipped"
    with pytest.raises(BundleError, match=f"not in the model catalogue, nor in {site}"):
        find_bundle("site-encoder", "3.0.0", None, "encoder")


def test_the_catalogue_refuses_a_purpose_or_alias_given_twice():
    document = json.loads((MODELS / "catalog.json").read_text())
    assert len(parse_catalog(document)) == len(document["models"])
    document["models"][-1]["aliases"] = ["2d"]  # the 3D encoder claims the 2D's alias
    with pytest.raises(BundleError, match="aliases 2d given to two bundles"):
        parse_catalog(document, "catalog.json")
    document = json.loads((MODELS / "catalog.json").read_text())
    document["models"][0]["default_for"].append("lnm")
    with pytest.raises(BundleError, match="default_for lnm given to two bundles"):
        parse_catalog(document, "catalog.json")


def test_regenerating_keeps_the_maintainers_fields_and_a_new_bundle_gets_none(tmp_path):
    current = json.loads((MODELS / "catalog.json").read_text())
    models = tmp_path / "Models"
    shutil.copytree(MODELS / "tumor-encoder-resnet2d", models / "tumor-encoder-resnet2d")
    shutil.copytree(MODELS / "tumor-encoder-resnet3d", models / "new-encoder")
    regenerated = {m["id"]: m for m in catalog_document(models, current)["models"]}
    kept = next(m for m in current["models"] if m["id"] == "tumor-encoder-resnet2d")
    assert regenerated["tumor-encoder-resnet2d"] == kept
    assert (regenerated["new-encoder"]["default_for"], "aliases" in regenerated["new-encoder"]) == ([], False)
