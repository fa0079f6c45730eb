"""Atomic writes: a failure leaves the old content and no temporary files."""

from __future__ import annotations

import numpy as np
import pytest

from CervicalAILib.core import atomic
from CervicalAILib.core.errors import OutputExistsError


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "reviewed.json"
    atomic.write_json(target, {"reviewed": True})
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["reviewed.json"]


def test_json_handles_numpy_and_rejects_nan(tmp_path):
    atomic.write_json(tmp_path / "a.json", {"x": np.float32(1.5), "v": np.arange(3)})
    assert '"v": [\n    0,' in (tmp_path / "a.json").read_text()
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "b.json", {"x": float("nan")})
    assert not (tmp_path / "b.json").exists()


def test_atomic_directory_refuses_non_empty(tmp_path):
    out = tmp_path / "export"
    with atomic.atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        with atomic.atomic_directory(out):
            pass
    with pytest.raises(RuntimeError), atomic.atomic_directory(out, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("2")
        raise RuntimeError("crash")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_outputs_get_normal_permissions_not_private_temp_ones(tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    file = atomic.write_text(tmp_path / "a.txt", "x")
    assert file.stat().st_mode & 0o777 == 0o666 & ~umask
    with atomic.atomic_directory(tmp_path / "export") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("y")
    assert (tmp_path / "export").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "export" / "sub" / "b.txt").stat().st_mode & 0o777 == 0o666 & ~umask
