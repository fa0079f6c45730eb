"""The one way the engine opens an ONNX network: `make_session`.

    onnx = make_session(bundle.file("network.onnx"), device="gpu", threads=2, what="segmentation network")
    onnx.session.run(...)      # the onnxruntime InferenceSession
    onnx.provider              # the provider actually used: "CPUExecutionProvider" or "CUDAExecutionProvider"
    onnx.note                  # None, or one line saying why a requested GPU was not used

Every session gets the same options: onnxruntime's own log quiet below errors, deterministic kernels
(`use_deterministic_compute`: the same input gives the same numbers, run after run), and, when
`threads` is given, that many intra-op threads and one inter-op thread (a cohort extraction runs
several workers on few cores). A GPU request on a machine or an onnxruntime without CUDA runs on the
CPU, and says so once in the log and in `note`. A missing or unreadable network file is a BundleError
of one line naming the file.

onnxruntime is imported inside `make_session`: the hub installs it when Slicer lacks it, and imports
engine modules before that.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from CervicalAILib.core.errors import BundleError, InputError

log = logging.getLogger(__name__)

DEVICES = ("cpu", "gpu")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
NO_CUDA = "gpu requested but onnxruntime has no CUDAExecutionProvider here; fell back to cpu"
CUDA_FAILED = "gpu requested but the CUDA provider failed to start; fell back to cpu"


@dataclass(frozen=True)
class OnnxSession:
    session: Any  # onnxruntime.InferenceSession
    provider: str  # the execution provider the session runs on
    note: str | None  # why a requested GPU was not used (None when it was, or when the CPU was asked for)

    @property
    def device_note(self) -> str:
        """"cpu", "gpu", or the fallback note: what segmentation.json records under device.note."""
        return self.note or ("gpu" if self.provider == CUDA else "cpu")


def _one_line(exc: Exception) -> str:
    """onnxruntime's messages span lines (a C++ stack); keep the first non-empty one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def make_session(
    onnx_path: str | Path, device: str = "cpu", threads: int | None = None, what: str = "network"
) -> OnnxSession:
    """An onnxruntime session of `onnx_path` on `device` ("cpu" or "gpu"); `what` names the network in messages.

    InputError for an unknown device; BundleError (one line, naming the file) for a missing or
    corrupt network file.
    """
    import onnxruntime as ort

    if device not in DEVICES:
        raise InputError(f"unknown device {device!r} (use cpu or gpu)")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise BundleError(f"{onnx_path}: {what} file not found")
    providers = [CPU]
    note = None
    if device == "gpu":
        if CUDA in ort.get_available_providers():
            providers = [CUDA, CPU]
        else:
            note = NO_CUDA
            log.warning("%s: %s", what, note)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.use_deterministic_compute = True
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=providers)
    except Exception as exc:  # a corrupt or incompatible network file: onnxruntime raises its own types
        raise BundleError(f"{onnx_path}: onnxruntime cannot load the {what} ({_one_line(exc)})") from exc
    provider = session.get_providers()[0]
    if device == "gpu" and note is None and provider != CUDA:
        note = CUDA_FAILED
        log.warning("%s: %s", what, note)
    log.info("%s runs on %s", what, provider)
    return OnnxSession(session, provider, note)
