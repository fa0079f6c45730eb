"""The one software-version record every writer uses."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib import __version__
from CervicalAILib.core.provenance import software_versions


def test_versions_come_from_the_modules_and_the_installed_distributions():
    record = software_versions({"numpy": "numpy", "SimpleITK": "SimpleITK"},
                               distributions=("numpy", "no-such-distribution-xyz"), python=True)
    assert list(record) == ["cervicalai", "python", "numpy", "SimpleITK", "no-such-distribution-xyz"]
    assert record["cervicalai"] == __version__ and record["python"] == platform.python_version()
    assert record["numpy"] == np.__version__  # the metadata's version and the module's agree
    assert record["SimpleITK"] == sitk.Version_VersionString()
    assert record["no-such-distribution-xyz"] == "not installed"


def test_a_module_the_writer_used_must_be_importable():
    with pytest.raises(ImportError):
        software_versions({"ghost": "no_such_module_xyz"})
