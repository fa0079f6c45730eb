"""The one ONNX session factory (bundles/onnx.py): options, the GPU fallback, bad network files."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest
from segmentation_testdata import onnx_network

from CervicalAILib.bundles.onnx import CPU, NO_CUDA, make_session
from CervicalAILib.core.errors import BundleError, InputError


@pytest.fixture
def network(tmp_path):
    path = tmp_path / "network.onnx"
    path.write_bytes(onnx_network("sigmoid", 2))  # sigmoid(4 * (channel 0 - 1.5))
    return path


def test_the_session_runs_the_network_with_the_threads_asked_for(network):
    onnx = make_session(network, threads=2)
    options = onnx.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert options.use_deterministic_compute and options.log_severity_level == 3
    assert onnx.provider == CPU and onnx.note is None and onnx.device_note == "cpu"
    image = np.random.default_rng(3).normal(size=(1, 2, 4, 5, 6)).astype(np.float32)
    got = onnx.session.run(None, {"image": image})[0]
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-4 * (image[:, :1] - 1.5))), rtol=1e-5, atol=1e-6)
    # no threads given: onnxruntime's default (0 = one per core), not a number of ours
    assert make_session(network).session.get_session_options().intra_op_num_threads == 0


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has CUDA")
def test_a_gpu_request_without_cuda_runs_on_the_cpu_and_says_so(network, caplog):
    with caplog.at_level(logging.WARNING, logger="CervicalAILib.bundles.onnx"):
        onnx = make_session(network, device="gpu", what="segmentation network")
    assert onnx.provider == CPU and onnx.note == NO_CUDA and onnx.device_note == NO_CUDA
    assert [r.getMessage() for r in caplog.records] == [f"segmentation network: {NO_CUDA}"]


def test_a_missing_or_corrupt_network_file_is_one_line_naming_it(tmp_path):
    missing = tmp_path / "absent.onnx"
    with pytest.raises(BundleError) as error:
        make_session(missing, what="encoder network")
    assert str(error.value) == f"{missing}: encoder network file not found"
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01not a protobuf graph" * 8)
    with pytest.raises(BundleError) as error:
        make_session(corrupt)
    message = str(error.value)
    assert message.startswith(f"{corrupt}: onnxruntime cannot load the network (") and "\n" not in message
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        make_session(corrupt, device="tpu")
