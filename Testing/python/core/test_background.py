"""Background-process runner of the Slicer modules (CervicalAILib.core.background): real child processes."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from CervicalAILib.core.background import (
    CANCELLED,
    FAILED,
    SUCCEEDED,
    BackgroundRun,
    Step,
    engine_command,
    engine_environment,
)
from CervicalAILib.io.case import write_case


def script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_progress_lines_of_weighted_steps_make_one_monotonic_bar(tmp_path):
    gate = tmp_path / "gate"
    first = script(tmp_path, "first.py", f"""
        import os, sys, time
        print("PROGRESS 0.500 half way", file=sys.stderr, flush=True)
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.01)
        print("PROGRESS 0.200 a step never moves the bar back", file=sys.stderr, flush=True)
        print("first done")
    """)
    second = script(tmp_path, "second.py", """
        import sys
        print("PROGRESS 0.5 registering DWI", file=sys.stderr, flush=True)
        print("second done")
    """)
    run = BackgroundRun([Step(first, "one", weight=1.0), Step(second, "two", weight=3.0)]).start()
    seen = []
    assert wait_until(lambda: seen.append(run.poll()) or run.message == "one: half way")
    assert run.fraction == pytest.approx(0.5 * 0.25)  # first step holds a quarter of the bar
    assert run.status == "running" and run.step == 0
    gate.write_text("go")
    state = run.wait(timeout=30)
    assert state.status == SUCCEEDED and state.returncode == 0
    assert run.fraction == 1.0
    assert "first done" in run.lines and "second done" in run.lines
    assert "PROGRESS 0.5 registering DWI" in run.lines
    # the second step's 50 % is 0.25 + 0.75 * 0.5 of the whole run
    fractions = [s.fraction for s in seen] + [state.fraction]
    assert fractions == sorted(fractions)


def test_failing_step_stops_the_run_with_the_engine_error_line(tmp_path):
    marker = tmp_path / "second-ran"
    failing = script(tmp_path, "fail.py", """
        import sys
        print("PROGRESS 0.1 loading", file=sys.stderr, flush=True)
        print("cervicalai segment: error: /data/case: no T2W image", file=sys.stderr, flush=True)
        sys.exit(2)
    """)
    never = script(tmp_path, "never.py", f"open({str(marker)!r}, 'w').write('ran')")
    run = BackgroundRun([Step(failing, "segmenting"), Step(never, "after")]).start()
    state = run.wait(timeout=30)
    assert state.status == FAILED and state.returncode == 2
    assert run.error_message() == "cervicalai segment: error: /data/case: no T2W image"
    assert not marker.exists()
    assert run.fraction < 1.0


def test_error_message_without_an_engine_line_gives_the_exit_status_and_tail(tmp_path):
    crash = script(tmp_path, "crash.py", "raise SystemExit('something broke')")
    run = BackgroundRun([Step(crash, "crashing step")]).start()
    run.wait(timeout=30)
    message = run.error_message()
    assert message.startswith("crashing step ended with exit status 1")
    assert "something broke" in message


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="process check reads /proc (Linux)")
def test_cancel_kills_the_whole_process_tree(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    marker = tmp_path / "second-ran"
    launcher = script(tmp_path, "launcher.py", f"""
        import subprocess, sys, time
        # like PythonSlicer: a launcher whose child does the work
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("PROGRESS 0.3 working", file=sys.stderr, flush=True)
        child.wait()
    """)
    never = script(tmp_path, "never.py", f"open({str(marker)!r}, 'w').write('ran')")
    run = BackgroundRun([Step(launcher, "long"), Step(never, "after")]).start()
    assert wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() and run.poll().fraction > 0)
    grandchild = int(pid_file.read_text())
    assert _alive(grandchild)
    started = time.monotonic()
    run.cancel()  # returns at once; the kill runs in its own thread
    assert time.monotonic() - started < 1.0
    state = run.wait(timeout=30)
    assert state.status == CANCELLED
    assert run.error_message() == "cancelled by the user"
    assert wait_until(lambda: not _alive(grandchild), timeout=10), "the launcher's child survived the cancel"
    assert not marker.exists()


def test_a_command_that_cannot_start_fails_cleanly(tmp_path):
    run = BackgroundRun([Step([str(tmp_path / "no-such-program")], "missing")]).start()
    state = run.wait(timeout=10)
    assert state.status == FAILED and state.returncode == 127
    assert "cannot start" in run.error_message()


def test_steps_and_runs_are_checked():
    with pytest.raises(ValueError, match="needs a command"):
        Step([])
    with pytest.raises(ValueError, match="weight must be positive"):
        Step(["x"], weight=0)
    with pytest.raises(ValueError, match="at least one step"):
        BackgroundRun([])
    run = BackgroundRun([Step([sys.executable, "-c", "pass"])]).start()
    with pytest.raises(RuntimeError, match="already started"):
        run.start()
    assert run.wait(timeout=30).status == SUCCEEDED


def test_engine_environment_puts_the_engine_first_and_keeps_the_rest(tmp_path):
    base = {"PYTHONPATH": os.pathsep.join(["/a", str(tmp_path)]), "HOME": "/home/x"}
    env = engine_environment(base, engine_dir=tmp_path, extra={"CERVICALAI_MODELS": "/models"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), "/a"]  # no duplicate
    assert env["HOME"] == "/home/x" and env["CERVICALAI_MODELS"] == "/models" and env["PYTHONUNBUFFERED"] == "1"
    assert base["PYTHONPATH"].startswith("/a")  # the caller's mapping is not changed
    with_paths = engine_environment(base, engine_dir=tmp_path, python_paths=["/ext/site-packages", "/a", ""])
    assert with_paths["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), "/ext/site-packages", "/a"]
    assert engine_command("/py", "segment", tmp_path) == ["/py", "-m", "CervicalAILib.cli", "segment", str(tmp_path)]


def _tiny_case(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    t2 = sitk.GetImageFromArray(rng.normal(300, 40, (12, 40, 40)).astype(np.float32))
    t2.SetSpacing((1.0, 1.0, 3.0))
    adc = sitk.GetImageFromArray(rng.normal(1000, 100, (10, 24, 24)).astype(np.float32))
    adc.SetSpacing((1.8, 1.8, 3.6))
    adc.SetOrigin((2.0, 1.0, 0.5))
    return write_case(folder, {"T2W": t2, "ADC": adc})


def test_a_real_engine_command_reports_progress_and_finishes(tmp_path):
    case = _tiny_case(tmp_path / "case")
    out = tmp_path / "registered"
    env = engine_environment(extra={"CERVICALAI_MODELS": str(tmp_path)})
    run = BackgroundRun([Step(engine_command(sys.executable, "study", "register", case, "--out", out), "registering")], env=env)
    state = run.start().wait(timeout=120)
    assert state.status == SUCCEEDED, run.error_message()
    progress = [line for line in run.lines if line.startswith("PROGRESS ")]
    assert len(progress) >= 3
    assert (out / "T2W.nii.gz").is_file() and (out / "ADC.nii.gz").is_file()
    assert run.fraction == 1.0 and run.message.startswith("registering")


def test_a_real_engine_error_is_the_one_line_message(tmp_path):
    missing = tmp_path / "nowhere"
    run = BackgroundRun([Step(engine_command(sys.executable, "study", "inspect", missing), "inspecting")])
    state = run.start().wait(timeout=120)
    assert state.status == FAILED and state.returncode == 2
    assert run.error_message().startswith("cervicalai study: error:")
    assert str(missing) in run.error_message()
