"""Model bundles: hashes verified, schema checked, only data files allowed."""

from __future__ import annotations

import json

import pytest

from CervicalAILib.bundles.format import SCHEMA, load_bundle, write_bundle
from CervicalAILib.core.errors import BundleError, OutputExistsError


def _manifest(**extra):
    manifest = {
        "name": "test-model",
        "version": "1.0.0",
        "task": "risk-model",
        "intended_use": "tests only",
        "training_data": "synthetic data; not for clinical use",
        "inputs": [{"role": "T2W"}],
        "outputs": [{"name": "probability"}],
        "provenance": {"seed": 1},
    }
    manifest.update(extra)
    return manifest


def _files():
    return {"MODEL_CARD.md": "# card\n", "coefficients.json": json.dumps({"a": 1.5}), "settings/T2W.yaml": "binWidth: 25\n"}


def test_round_trip_and_hashes(tmp_path):
    bundle = write_bundle(tmp_path / "b", _manifest(), _files())
    assert bundle.manifest["schema"] == SCHEMA
    assert set(bundle.manifest["files"]) == {"MODEL_CARD.md", "coefficients.json", "settings/T2W.yaml"}
    assert bundle.read_json("coefficients.json") == {"a": 1.5}
    assert bundle.read_yaml("settings/T2W.yaml") == {"binWidth": 25}
    assert bundle.label == "test-model@1.0.0"
    # hash of the card is the real SHA-256 of its bytes
    import hashlib

    assert bundle.manifest["files"]["MODEL_CARD.md"]["sha256"] == hashlib.sha256(b"# card\n").hexdigest()


def test_same_inputs_same_bytes(tmp_path):
    write_bundle(tmp_path / "a", _manifest(), _files())
    write_bundle(tmp_path / "b", _manifest(), _files())
    for name in ("bundle.json", "coefficients.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_tampered_file_is_refused(tmp_path):
    write_bundle(tmp_path / "b", _manifest(), _files())
    (tmp_path / "b" / "coefficients.json").write_text('{"a": 9.9}')
    with pytest.raises(BundleError, match="SHA-256 does not match"):
        load_bundle(tmp_path / "b")


def test_missing_file_is_refused(tmp_path):
    write_bundle(tmp_path / "b", _manifest(), _files())
    (tmp_path / "b" / "settings" / "T2W.yaml").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(tmp_path / "b")


def test_unknown_schema_is_refused(tmp_path):
    write_bundle(tmp_path / "b", _manifest(), _files())
    manifest = json.loads((tmp_path / "b" / "bundle.json").read_text())
    manifest["schema"] = "cervicalai.bundle/99"
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="unknown bundle schema"):
        load_bundle(tmp_path / "b")


def test_pickles_are_never_accepted(tmp_path):
    files = _files()
    files["model.pkl"] = b"\x80\x04"
    with pytest.raises(BundleError, match="never pickles"):
        write_bundle(tmp_path / "b", _manifest(), files)


def test_wrong_task_and_missing_card(tmp_path):
    write_bundle(tmp_path / "b", _manifest(), _files())
    with pytest.raises(BundleError, match="expected 'segmentation'"):
        load_bundle(tmp_path / "b", task="segmentation")
    files = _files()
    del files["MODEL_CARD.md"]
    with pytest.raises(BundleError, match="model card"):
        write_bundle(tmp_path / "c", _manifest(), files)


def test_existing_bundle_not_overwritten_without_flag(tmp_path):
    write_bundle(tmp_path / "b", _manifest(), _files())
    with pytest.raises(OutputExistsError):
        write_bundle(tmp_path / "b", _manifest(version="2.0.0"), _files())
    bundle = write_bundle(tmp_path / "b", _manifest(version="2.0.0"), _files(), overwrite=True)
    assert bundle.version == "2.0.0"
    assert not any(p.name.endswith((".partial", ".old")) for p in tmp_path.iterdir())


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)


def test_no_bundle_is_written_into_the_extensions_model_folder(tmp_path, monkeypatch):
    from CervicalAILib.bundles import catalog
    from CervicalAILib.core.errors import InputError

    shipped = tmp_path / "Models"
    (shipped / "test-model").mkdir(parents=True)
    (shipped / "test-model" / "bundle.json").write_text("{}")
    monkeypatch.setattr(catalog, "shipped_models_dirs", lambda: [shipped])
    for target in (shipped / "test-model", shipped / "new-model", shipped):
        with pytest.raises(InputError, match="extension's own model folder"):
            write_bundle(target, _manifest(), _files(), overwrite=True)
    assert (shipped / "test-model" / "bundle.json").read_text() == "{}"  # untouched, even with overwrite
    assert not (shipped / "new-model").exists()
    # beside it (a sibling whose name starts the same) is not inside it
    assert write_bundle(tmp_path / "Models-refit" / "test-model", _manifest(), _files()).label == "test-model@1.0.0"
