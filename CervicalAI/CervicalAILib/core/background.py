"""Run engine commands in a background process, so that Slicer's GUI never freezes.

A `BackgroundRun` starts one or more steps (each a command line, typically
`PythonSlicer -m CervicalAILib.cli ...`) one after the other in child processes. A reader thread
collects their output lines; the engine's `PROGRESS <fraction> <message>` lines (see
`CervicalAILib.core.progress`) become an overall fraction and message, each step taking its share
of the bar by weight. The caller, e.g. a Slicer widget with a `qt.QTimer`, calls `poll()` now
and then to read the new state; `cancel()` kills the whole process tree of the running step
(PythonSlicer is a launcher that starts the real Python as its child, so killing only the
launcher would leave the work running).

Pure Python (subprocess + threading): no Qt, no Slicer, testable anywhere.

    run = BackgroundRun([Step(engine_command(python, "segment", case, "--out", out), "segmenting")])
    run.start()
    ... state = run.poll(); progressBar.value = 100 * state.fraction ...
    run.cancel()
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from CervicalAILib.core.progress import parse_progress_line

# States of a run.
PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "pending", "running", "succeeded", "failed", "cancelled"
FINISHED_STATES = (SUCCEEDED, FAILED, CANCELLED)
# Output lines kept for error messages and logs (the newest ones).
MAX_KEPT_LINES = 2000
# Seconds between SIGTERM and SIGKILL when a run is cancelled.
KILL_GRACE_SECONDS = 3.0
ENGINE_DIR = Path(__file__).resolve().parents[2]  # the folder that holds CervicalAILib


def engine_command(python: str | os.PathLike, *arguments: str | os.PathLike) -> list[str]:
    """[python, "-m", "CervicalAILib.cli", *arguments] as strings."""
    return [str(python), "-m", "CervicalAILib.cli", *(str(argument) for argument in arguments)]


def engine_environment(base: Mapping[str, str] | None = None, engine_dir: str | os.PathLike | None = None,
                       extra: Mapping[str, str] | None = None, python_paths: Sequence[str] = ()) -> dict[str, str]:
    """Environment for a child that runs the engine: `base` (default os.environ) with the
    engine's folder first on PYTHONPATH (the child does not see Slicer's module paths), then
    `python_paths` (e.g. the running Slicer's sys.path, which holds extensions' packages such as
    SlicerRadiomics' pyradiomics), unbuffered output, and `extra` variables (e.g. CERVICALAI_MODELS)."""
    env = dict(os.environ if base is None else base)
    first = [str(engine_dir if engine_dir is not None else ENGINE_DIR), *(str(p) for p in python_paths if p)]
    paths: list[str] = []
    for path in first + env.get("PYTHONPATH", "").split(os.pathsep):
        if path and path not in paths:
            paths.append(path)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update({key: str(value) for key, value in (extra or {}).items()})
    return env


@dataclass
class Step:
    """One command of a run: its argument list, what the bar says while it runs, its share."""

    command: Sequence[str]
    label: str = ""
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("a step needs a command")
        if not self.weight > 0:
            raise ValueError(f"step weight must be positive, got {self.weight!r}")


@dataclass
class RunState:
    """What `poll()` reports: overall progress, the newest message and the lines since last poll."""

    status: str
    fraction: float
    message: str
    step: int  # index of the running (or last) step
    new_lines: list[str] = field(default_factory=list)
    returncode: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATES


class BackgroundRun:
    """Steps run one after the other in child processes; stops at the first failing step."""

    def __init__(self, steps: Sequence[Step], env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike | None = None):
        if not steps:
            raise ValueError("a background run needs at least one step")
        self.steps = list(steps)
        self.env = dict(env) if env is not None else None
        self.cwd = str(cwd) if cwd is not None else None
        self.status = PENDING
        self.fraction = 0.0
        self.message = ""
        self.step = 0
        self.returncode: int | None = None
        self.lines: list[str] = []  # newest MAX_KEPT_LINES output lines of all steps
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._queue: queue.Queue[tuple[str, object]] = queue.Queue()
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._cancel_requested = threading.Event()
        self._thread: threading.Thread | None = None
        total = sum(step.weight for step in self.steps)
        self._starts = [sum(step.weight for step in self.steps[:i]) / total for i in range(len(self.steps))]
        self._shares = [step.weight / total for step in self.steps]

    # -- control ------------------------------------------------------------------------------------
    def start(self) -> BackgroundRun:
        if self.status != PENDING:
            raise RuntimeError(f"this run was already started (status {self.status})")
        self.status = RUNNING
        self.started_at = time.monotonic()
        self.message = self.steps[0].label
        self._thread = threading.Thread(target=self._work, name="CervicalAI background run", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop the run: kill the running step's whole process tree; no further step starts.

        Returns at once (the kill, with its grace period, runs in its own thread); `poll()`
        reports "cancelled" when the process is gone.
        """
        self._cancel_requested.set()
        with self._lock:
            process = self._process
        if process is not None:
            threading.Thread(target=kill_process_tree, args=(process,), daemon=True).start()

    def poll(self) -> RunState:
        """Apply what the reader thread reported since the last call; never blocks."""
        new_lines: list[str] = []
        while True:
            try:
                kind, value = self._queue.get_nowait()
            except queue.Empty:
                break
            self._apply(kind, value, new_lines)
        return RunState(self.status, self.fraction, self.message, self.step, new_lines, self.returncode)

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> RunState:
        """Block until the run finishes (or `timeout` seconds pass); for scripts and tests."""
        deadline = None if timeout is None else time.monotonic() + timeout
        lines: list[str] = []
        while True:
            state = self.poll()
            lines += state.new_lines
            if state.finished or (deadline is not None and time.monotonic() >= deadline):
                state.new_lines = lines
                return state
            time.sleep(interval)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATES

    @property
    def seconds(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at

    def error_message(self, max_lines: int = 12) -> str:
        """Why the run failed, for a message box: the engine's one-line error if it printed one
        (`cervicalai <command>: error: ...`), else the last output lines."""
        if self.status == CANCELLED:
            return "cancelled by the user"
        errors = [line for line in self.lines if ": error: " in line or line.startswith("error:")]
        if errors:
            return errors[-1]
        tail = [line for line in self.lines if parse_progress_line(line) is None][-max_lines:]
        step = self.steps[min(self.step, len(self.steps) - 1)]
        head = f"{step.label or 'step ' + str(self.step + 1)} ended with exit status {self.returncode}"
        return "\n".join([head, *tail])

    # -- reader thread ------------------------------------------------------------------------------
    def _work(self) -> None:
        returncode = 0
        for index, step in enumerate(self.steps):
            if self._cancel_requested.is_set():
                break
            self._queue.put(("step", index))
            try:
                process = _popen(step.command, self.env, self.cwd)
            except OSError as exc:
                self._queue.put(("line", f"error: cannot start {step.command[0]!r}: {exc}"))
                returncode = 127
                break
            with self._lock:
                self._process = process
            if self._cancel_requested.is_set():  # cancelled while starting
                kill_process_tree(process)
            assert process.stdout is not None
            for raw in iter(process.stdout.readline, b""):
                self._queue.put(("line", raw.decode("utf-8", errors="replace").rstrip("\r\n")))
            process.stdout.close()
            returncode = process.wait()
            with self._lock:
                self._process = None
            if returncode != 0:
                break
        if self._cancel_requested.is_set():
            self._queue.put(("done", (CANCELLED, returncode)))
        else:
            self._queue.put(("done", (SUCCEEDED if returncode == 0 else FAILED, returncode)))

    def _apply(self, kind: str, value: object, new_lines: list[str]) -> None:
        if kind == "step":
            self.step = int(value)  # type: ignore[arg-type]
            self.fraction = max(self.fraction, self._starts[self.step])
            self.message = self.steps[self.step].label or self.message
        elif kind == "line":
            line = str(value)
            new_lines.append(line)
            self.lines.append(line)
            if len(self.lines) > MAX_KEPT_LINES:
                del self.lines[: len(self.lines) - MAX_KEPT_LINES]
            parsed = parse_progress_line(line)
            if parsed is not None:
                fraction, message = parsed
                overall = self._starts[self.step] + self._shares[self.step] * min(max(fraction, 0.0), 1.0)
                self.fraction = max(self.fraction, overall)  # the bar never goes back
                label = self.steps[self.step].label
                self.message = f"{label}: {message}" if label and message else (message or label)
        elif kind == "done":
            status, returncode = value  # type: ignore[misc]
            self.status, self.returncode = status, returncode
            self.finished_at = time.monotonic()
            if status == SUCCEEDED:
                self.fraction = 1.0


def _popen(command: Sequence[str], env: Mapping[str, str] | None, cwd: str | None) -> subprocess.Popen:
    """Start a child in its own process group (session), so that its whole tree can be killed."""
    options: dict = {}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
    else:
        options["start_new_session"] = True
    return subprocess.Popen(
        [str(part) for part in command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # PROGRESS lines come on stderr: one ordered stream
        env=dict(env) if env is not None else None,
        cwd=cwd,
        **options,
    )


def kill_process_tree(process: subprocess.Popen, grace: float = KILL_GRACE_SECONDS) -> None:
    """Terminate `process` and every process it started (its process group / job tree)."""
    if process.poll() is not None and sys.platform == "win32":
        return
    if sys.platform == "win32":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True, check=False)
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)  # the group id is the child's pid (new session)
    except (ProcessLookupError, PermissionError):
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # grandchildren that ignored SIGTERM, or are still exiting
    except (ProcessLookupError, PermissionError):
        pass
