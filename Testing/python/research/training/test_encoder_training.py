"""Encoder training: ONNX export == torch, the contrastive loss, augmentations, a seconds-long smoke run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from deep_testdata import ellipsoid_case

from CervicalAILib.cli import main
from CervicalAILib.core.errors import CervicalAIError, InputError
from CervicalAILib.features.deep import extract_deep_features, load_encoder
from CervicalAILib.io.case import load_case, write_case

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from CervicalAILib.research.training.encoder import (  # noqa: E402 - after the importorskip guards
    EncoderTrainingConfig,
    augment,
    build_backbone,
    collect_crops,
    export_onnx,
    nt_xent_loss,
    train_encoder,
    verify_onnx,
)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """Six small cases: T2W with labels/tumor, ADC on its own coarser grid with labels/tumor_ADC."""
    root = tmp_path_factory.mktemp("cases")
    for i in range(6):
        radii = (6.0 + 2 * i, 5.0 + i, 8.0 + i)
        t2, mask = ellipsoid_case(size=(60, 60, 12), center_mm=(24.0, 24.0, 24.0), radii_mm=radii, seed=i, texture=10.0 * i)
        adc, adc_mask = ellipsoid_case(size=(30, 30, 10), spacing=(1.6, 1.6, 5.0), center_mm=(24.0, 24.0, 24.0),
                                       radii_mm=radii, tumour=80.0, background=200.0, seed=10 + i)
        write_case(root / f"case{i}", {"T2W": t2, "ADC": adc}, labels={"tumor": mask, "tumor_ADC": adc_mask})
    write_case(root / "nolabel", {"T2W": t2})
    return root


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_onnx_export_matches_torch(tmp_path, dim):
    config = EncoderTrainingConfig(dim=dim, width=4, crop_size=(32, 32) if dim == "2d" else (16, 32, 32)).resolved()
    torch.manual_seed(0)
    net = build_backbone(config)
    for module in net.modules():  # non-trivial batch-norm statistics, as after training
        if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    shape = config.crop_spec().input_shape
    export_onnx(net, shape, tmp_path / "net.onnx")
    x = np.random.default_rng(0).normal(size=(5, *shape)).astype(np.float32)
    diff = verify_onnx(net, tmp_path / "net.onnx", x)
    assert diff <= 1e-4
    with torch.no_grad():
        features = net(torch.from_numpy(x)).numpy()
    assert features.shape == (5, 32) and features.std() > 0
    # the check can fail: another network's export does not pass for this one
    other = build_backbone(config)
    with pytest.raises(CervicalAIError, match="ONNX export differs"):
        verify_onnx(other, tmp_path / "net.onnx", x)


def test_nt_xent_loss_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    z = np.concatenate([z1, z2])
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    sim = z @ z.T / 0.5
    losses = []
    for i in range(8):
        positive = (i + 4) % 8
        others = [j for j in range(8) if j != i]
        losses.append(-sim[i, positive] + np.log(np.exp(sim[i, others]).sum()))
    got = nt_xent_loss(torch.tensor(z1), torch.tensor(z2), 0.5).item()
    assert got == pytest.approx(np.mean(losses), rel=1e-6)
    # identical, well-separated pairs give a lower loss than random pairs
    assert nt_xent_loss(torch.eye(4) * 5, torch.eye(4) * 5, 0.5) < got


def test_augmentations_keep_shape_and_background():
    x = torch.zeros(6, 3, 32, 32)
    x[:, :, 10:22, 8:20] = torch.randn(6, 3, 12, 12)
    fg = x != 0
    a = augment(x, fg, torch.Generator().manual_seed(1), spatial=2)
    b = augment(x, fg, torch.Generator().manual_seed(1), spatial=2)
    c = augment(x, fg, torch.Generator().manual_seed(2), spatial=2)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.all(a[:, :, :2, :] == 0) and torch.all(a[:, :, :, :2] == 0)  # border stays background
    v = torch.zeros(4, 1, 16, 24, 24)
    v[:, :, 4:12, 8:16, 8:16] = 1.0
    out = augment(v, v != 0, torch.Generator().manual_seed(0), spatial=3)
    assert out.shape == v.shape
    assert float(out.sum()) == pytest.approx(float(v.sum()), rel=0.35)  # mild: +-10% scale, +-10% contrast


def test_training_crops_use_each_sequence_with_its_own_label(cases):
    config = EncoderTrainingConfig(dim="2d", width=4, crop_size=(32, 32), roles=("T2W", "ADC"), slices_per_tumour=2).resolved()
    dirs = sorted(p for p in cases.iterdir() if p.name.startswith("case"))
    crop_set = collect_crops(dirs + [cases / "nolabel"], config)
    assert crop_set.crops.shape == (24, 3, 32, 32)  # 6 cases x 2 roles x 2 slices
    assert {s["role"] for s in crop_set.sources} == {"T2W", "ADC"}
    assert len(crop_set.skipped) == 1 and "nolabel" in crop_set.skipped[0]
    # masked crops: background exactly 0, tumour z-scored values around it
    assert np.all((crop_set.crops != 0).sum(axis=(1, 2, 3)) > 20)
    first = load_case(dirs[0])
    assert sitk.GetArrayViewFromImage(first.label("tumor_ADC")).shape != sitk.GetArrayViewFromImage(first.label("tumor")).shape


def test_train_encoder_cli_smoke(cases, tmp_path, capsys):
    out = tmp_path / "enc2d"
    argv = ["train-encoder", str(cases), "--out", str(out), "--dim", "2d", "--steps", "3", "--batch-size", "8",
            "--width", "4", "--crop-size", "32,32", "--roles", "T2W,ADC", "--seed", "1", "--log", str(tmp_path / "log.jsonl")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "PROGRESS 1.000" in captured.err and "tumor-encoder-resnet2d@1.0.0" in captured.out
    encoder = load_encoder(out)
    manifest = encoder.bundle.manifest
    assert manifest["task"] == "encoder" and manifest["outputs"]["dim"] == 32
    assert "without outcome labels" in manifest["training_data"]
    assert manifest["metrics"]["onnx_max_abs_diff"] <= 1e-4 and manifest["metrics"]["steps_done"] == 3
    assert manifest["provenance"]["config"]["seed"] == 1 and manifest["provenance"]["skipped"]
    assert "Not for clinical use" in (out / "MODEL_CARD.md").read_text()
    assert [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [3]
    case = load_case(cases / "case2")
    features = extract_deep_features(case.images(), {"T2W": case.label("tumor"), "ADC": case.label("tumor_ADC")}, encoder)
    assert len(features) == 64 and "ADC_dl-resnet2d_F0031" in features
    assert all(np.isfinite(v) for v in features.values())
    # an existing bundle is never overwritten without --overwrite
    assert main(argv) == 2
    assert "exists" in capsys.readouterr().err


def test_train_encoder_3d_smoke(cases, tmp_path):
    config = EncoderTrainingConfig(dim="3d", width=4, crop_size=(16, 32, 32), roles=("T2W",), steps=2, batch_size=4,
                                   encoder_name="tiny3d")
    bundle = train_encoder([cases / f"case{i}" for i in range(6)], tmp_path / "enc3d", config)
    encoder = load_encoder(bundle.path)
    assert encoder.spec.crop.mode == "3d" and encoder.spec.crop.input_shape == (1, 16, 32, 32)
    case = load_case(cases / "case1")
    features = extract_deep_features(case.images(), case.label("tumor"), encoder, roles=["T2W"])
    assert list(features)[0] == "T2W_dl-tiny3d_F0000" and len(features) == 32


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (EncoderTrainingConfig(dim="4d"), "2d or 3d"),
        (EncoderTrainingConfig(crop_size=(8, 8)), "too small"),
        (EncoderTrainingConfig(crop_size=(32, 32, 32)), "need 2 values"),
        (EncoderTrainingConfig(batch_size=2), "batch size"),
        (EncoderTrainingConfig(roles=("PET",)), "roles"),
        (EncoderTrainingConfig(temperature=0.0), "temperature"),
    ],
)
def test_bad_training_settings_are_refused(config, message):
    with pytest.raises(InputError, match=message):
        config.resolved()


def test_no_usable_cases(tmp_path, cases):
    with pytest.raises(InputError, match="not a case folder"):
        train_encoder([tmp_path / "missing"], tmp_path / "out")
    with pytest.raises(InputError, match="no usable training crops"):
        train_encoder([cases / "nolabel"], tmp_path / "out", EncoderTrainingConfig(width=4, crop_size=(32, 32), steps=1))
