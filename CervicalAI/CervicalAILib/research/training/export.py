"""ONNX export of a trained segmentation network, verified against torch, inside a bundle."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from CervicalAILib.bundles.format import Bundle, load_bundle, write_bundle
from CervicalAILib.bundles.onnx import make_session
from CervicalAILib.contracts.label_table import canonical_name
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.core.provenance import software_versions
from CervicalAILib.research.training.dataset import dataset_provenance
from CervicalAILib.research.training.network import size_multiple_zyx
from CervicalAILib.research.training.ood import add_feature_output
from CervicalAILib.research.training.synthesis import SynthesisSettings
from CervicalAILib.segmentation.anatomy import DEFAULT_ORGAN_MIN_ML, GateSettings, gate_available
from CervicalAILib.segmentation.sliding_window import MIRRORED_PASSES_ZYX

ONNX_FILE = "model.onnx"
OPSET = 17
TOLERANCE = 1e-4
NOT_CLINICAL = "trained on synthetic data, not for clinical use"
# how the model card describes each working-grid orientation (segmentation.preprocess.ORIENTATIONS)
GRID_AXES = {
    "LPS-nearest": "the T2WI's axes reordered nearest to LPS (an oblique series stays oblique)",
    "LPS": "axis-aligned LPS (a true axial grid, whatever plane the T2WI was acquired in)",
}
# what trains and exports a network: recorded in the bundle's provenance
TRAINING_LIBRARIES = {"torch": "torch", "monai": "monai", "onnx": "onnx", "onnxruntime": "onnxruntime",
                      "numpy": "numpy", "SimpleITK": "SimpleITK"}


def _with_sigmoid(net):
    import torch

    class ProbabilityNetwork(torch.nn.Module):
        """The network plus its sigmoid, so the ONNX output is the tumour probability."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, image):
            return torch.sigmoid(self.inner(image))

    return ProbabilityNetwork(net).eval()


def export_onnx(net, in_channels: int, path: str | Path, check_shapes_zyx: Sequence[Sequence[int]]) -> float:
    """Export `net` (+ sigmoid) with dynamic spatial size; return the largest |ONNX - torch|.

    Verified on random inputs of every shape in `check_shapes_zyx`; BundleError when the
    difference exceeds 1e-4 anywhere.
    """
    import torch

    model = _with_sigmoid(net.cpu().eval())
    shapes = [list(s) for s in check_shapes_zyx]
    dummy = torch.zeros(1, in_channels, *shapes[0])
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["image"],
        output_names=["probability"],
        opset_version=OPSET,
        dynamo=False,
        dynamic_axes={"image": {2: "z", 3: "y", 4: "x"}, "probability": {2: "z", 3: "y", 4: "x"}},
    )
    session = make_session(path, what="exported network").session
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for shape in shapes:
        sample = torch.randn(1, in_channels, *shape, generator=generator)
        with torch.no_grad():
            expected = model(sample).numpy()
        actual = session.run(None, {"image": sample.numpy()})[0]
        worst = max(worst, float(np.abs(actual - expected).max()))
    if worst > TOLERANCE:
        raise BundleError(f"{path}: ONNX output differs from torch by {worst:.2e} (> {TOLERANCE:g}); export refused")
    return worst


def starting_bundle(
    bundle_path: str | Path, roles: Sequence[str], structures: Sequence[str], architecture: dict[str, Any],
    working_spacing_mm: Sequence[float],
) -> Bundle:
    """The segmentation bundle a run starts from (`--init-from`), checked before any case is prepared:
    it must declare the same inputs, outputs (by name), architecture and working spacing as the run."""
    bundle = load_bundle(bundle_path, task="segmentation")
    manifest = bundle.manifest
    declared_architecture = manifest["network"].get("architecture") or {}
    keys = [*architecture, *(key for key in declared_architecture if key not in architecture)]
    declared = {
        "inputs": [entry["role"] for entry in manifest["inputs"]],
        "outputs": [canonical_name(entry["name"]) for entry in manifest["outputs"]],
        "working spacing": [float(v) for v in manifest["preprocessing"]["working_spacing_mm"]],
        **{f"network {key}": declared_architecture.get(key) for key in keys},
    }
    wanted = {
        "inputs": list(roles),
        "outputs": [canonical_name(name) for name in structures],
        "working spacing": [float(v) for v in working_spacing_mm],
        **{f"network {key}": architecture.get(key) for key in keys},
    }
    for what, value in wanted.items():
        if declared[what] != value:
            raise InputError(f"--init-from {bundle.path}: its {what} {declared[what]} differ from this run's {value}")
    return bundle


def initialise_from_bundle(net, bundle: Bundle, in_channels: int) -> dict[str, Any]:
    """Copy the trained weights of `bundle` (checked by `starting_bundle`) into `net`, so training continues
    from that model; returns what the new bundle's provenance records.

    Weights are read back from its ONNX file: initialisers that kept their torch name map to the
    state-dict key of that name; the exporter renames a few (the PReLU slopes), and those map in the
    order the graph uses them. The copy is then checked: the torch network must reproduce the
    bundle's output to 1e-4, else BundleError.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    manifest = bundle.manifest
    onnx_path = bundle.file(manifest["network"]["file"])
    graph = onnx.load(str(onnx_path)).graph
    stored = {item.name: numpy_helper.to_array(item) for item in graph.initializer}
    state = net.state_dict()
    weights = {}
    for name, array in stored.items():
        key = name.removeprefix("inner.")  # the exported module wraps the network as "inner"
        if key in state:
            weights[key] = array
    renamed = [node.input[1] for node in graph.node if node.op_type == "PRelu" and node.input[1] not in weights]
    unmatched = [key for key in state if key not in weights]
    if len(renamed) != len(unmatched):
        raise BundleError(f"{bundle.path}: its network does not match the declared architecture "
                          f"({len(unmatched)} weights unaccounted for, {len(renamed)} unnamed in the ONNX file)")
    weights.update({key: stored[name] for key, name in zip(unmatched, renamed, strict=True)})
    try:
        net.load_state_dict({key: torch.from_numpy(weights[key].copy()).reshape(state[key].shape) for key in state})
    except RuntimeError as exc:
        raise BundleError(f"{bundle.path}: its weights do not fit the declared architecture ({exc})") from exc
    patch_zyx = [int(v) for v in manifest["network"]["training_patch_size_xyz"][::-1]]
    sample = torch.randn(1, in_channels, *patch_zyx, generator=torch.Generator().manual_seed(0))
    session = make_session(onnx_path, what="initial network").session
    expected = session.run([manifest["network"]["output_name"]], {manifest["network"]["input_name"]: sample.numpy()})[0]
    net.eval()
    with torch.no_grad():
        actual = torch.sigmoid(net(sample)).numpy()
    difference = float(np.abs(actual - expected).max())
    if difference > TOLERANCE:
        raise BundleError(f"{bundle.path}: its weights, read back into torch, differ from the ONNX output by "
                          f"{difference:.2e} (> {TOLERANCE:g}); cannot continue training from it")
    return {"label": bundle.label, "model_sha256": manifest["files"][manifest["network"]["file"]]["sha256"],
            "torch_vs_onnx_max_abs_difference": difference}


def model_card(manifest: dict[str, Any]) -> str:
    """MODEL_CARD.md: what the model is, what trained it, how well, and what it is not for."""
    validation = manifest["validation"]
    pre = manifest["preprocessing"]
    data = manifest["provenance"]["data"]
    lines = [
        f"# {manifest['name']} {manifest['version']}",
        "",
        f"**{NOT_CLINICAL.capitalize()}.** Research and software-testing use only.",
        "",
        "## What it does",
        "",
        "Segments the primary cervical tumour on pelvic MRI. Inputs (channel order): "
        + ", ".join(entry["role"] for entry in manifest["inputs"])
        + ", co-registered onto the T2WI grid. Output: tumour probability per voxel; the runtime "
        f"(`cervicalai segment`) thresholds it at {manifest['postprocessing']['threshold']}, the threshold with the best "
        f"mean Dice on {validation.get('threshold_chosen_on', 'the validation cases')}; it keeps the main lesion and "
        "nearby satellites, fills holes and maps the result back onto the T2WI grid.",
        "",
    ]
    organs = [entry["name"] for entry in manifest["outputs"][1:]]
    if organs:
        lines += [
            f"Anatomical outputs (organ segments, hidden by default): {', '.join(organs)}. "
            + ("The anatomy gate keeps only tumour candidates in or next to the cervix/uterus and reports "
               "\"no cervix or uterus recognised in this study\" (no tumour contour) when there is none."
               if manifest.get("anatomy_gate") else ""),
            "",
        ]
    organ_threshold = manifest.get("organ_threshold")
    if organs and isinstance(organ_threshold, dict):
        lines += [
            "Each organ voxel goes to the most probable structure among those at or above their own threshold "
            "(mean of the original and mirrored pass): "
            + ", ".join(f"{name} {value}" for name, value in organ_threshold.items())
            + f", each the threshold with the best median Dice on {validation.get('threshold_chosen_on', 'the validation cases')}.",
            "",
        ]
    recipe = manifest["provenance"].get("recipe", {})
    if recipe.get("domain_randomisation"):
        randomisation = recipe["domain_randomisation"]
        lines += [f"Domain randomisation: {100 * randomisation['fraction']:.0f}% of the training samples were "
                  f"{randomisation['what']}.", ""]
    lines += [
        "## Network and preprocessing",
        "",
        f"- {manifest['network']['architecture']['name']}, channels {manifest['network']['architecture']['channels']}, "
        f"strides (z, y, x) {manifest['network']['architecture']['strides_zyx']}, ONNX opset {OPSET}.",
        f"- Working grid {pre['working_spacing_mm']} mm (x, y, z), {GRID_AXES[pre.get('orientation', 'LPS-nearest')]}; "
        "linear interpolation.",
        "- Per-sequence z-score inside the body (voxels above 10% of the 99th percentile), clipped to +-5.",
        f"- Sliding window {manifest['inference']['patch_size_xyz']} (x, y, z) with Gaussian blending, plus a "
        "left-right mirrored pass for the confidence.",
        "",
        "## Training data",
        "",
        f"{manifest['training_data']}",
        "",
    ]
    for cohort in data:
        lines.append("- " + ", ".join(f"{k}: {v}" for k, v in cohort.items()))
    start = manifest["provenance"].get("initialised_from")
    if start:
        lines += ["", f"Training started from the weights of {start['label']} (model.onnx SHA-256 "
                  f"{start['model_sha256'][:12]}...): this run continued that model's training."]
    lines += [
        "",
        "## Validation (held-out synthetic cases of the training cohort)",
        "",
        f"- cases: {len(validation['cases'])}; Dice on the working grid: mean {validation['dice_mean_working_grid']}, "
        f"median {validation['dice_median_working_grid']} ("
        + ("final" if manifest["provenance"].get("exported_epoch") == "final" else "best")
        + f" epoch {manifest['provenance']['best_epoch']} of {manifest['provenance']['epochs_run']}"
        + ("; epoch 0 is the starting model: no epoch improved on it" if manifest['provenance']['best_epoch'] == 0
           else "") + ").",
        "- Held-out figures on a cohort of a different seed, on the T2WI grid: see docs/segmentation.md and "
        "Testing/benchmarks/results/segmentation.md.",
        "",
        "## Limits",
        "",
        "- Never seen a real patient: synthetic anatomy, contrast and noise. Real images will differ; "
        "expect errors and check every contour.",
        "- Inputs far outside the training spacing or intensity range are segmented with a warning.",
        "",
    ]
    return "\n".join(lines)


def write_segmentation_bundle(
    net, config, preprocessing: dict[str, Any], train_range: dict[str, Any], report: dict[str, Any],
    case_dirs: Sequence[Path],
) -> tuple[Bundle, float]:
    """Export `net` and write the complete bundle at `config.out`; returns (bundle, max ONNX error)."""
    patch_zyx = list(config.patch_size_xyz[::-1])
    inference_zyx = list(config.inference_patch_size_xyz[::-1])
    structures = [canonical_name(name) for name in getattr(config, "structures", ["tumor"])]
    with tempfile.TemporaryDirectory() as tmp:
        plain_path = Path(tmp) / "plain.onnx"
        difference = export_onnx(net, len(config.roles), plain_path, [patch_zyx, inference_zyx])
        onnx_path = Path(tmp) / ONNX_FILE
        features = add_feature_output(plain_path, onnx_path, len(config.roles), inference_zyx)
        data = dataset_provenance(case_dirs)
        described = "; ".join(
            f"{c.get('cases_used')} cases of cohort {c['cohort']}"
            + (f" (generator {c.get('version', c.get('generator_version', '?'))}, seed {c['seed']})" if "seed" in c else "")
            for c in data
        )
        manifest: dict[str, Any] = {
            "name": config.name,
            "version": config.version,
            "task": "segmentation",
            "intended_use": "Research use: automatic contour of the primary cervical tumour on pelvic MRI for "
            "reader review and radiomics. " + NOT_CLINICAL.capitalize() + ".",
            "training_data": f"Synthetic multi-parametric pelvic MRI ({described}; {report['training_cases']} for "
            f"training, {len(report['validation']['cases'])} for validation); {NOT_CLINICAL}.",
            "inputs": [{"role": role, "channel": i} for i, role in enumerate(config.roles)],
            "outputs": [
                {"name": name, "channel": channel, "meaning": f"probability of {name} (sigmoid inside the graph)"}
                for channel, name in enumerate(structures)
            ],
            "preprocessing": preprocessing,
            "network": {
                "file": ONNX_FILE,
                "input_name": "image",
                "output_name": "probability",
                "layout": "(1, channels, z, y, x) float32",
                "opset": OPSET,
                "architecture": config.architecture,
                "size_multiple_xyz": size_multiple_zyx(config.architecture)[::-1],
                "training_patch_size_xyz": list(config.patch_size_xyz),
                "onnx_vs_torch_max_abs_difference": difference,
                "features_output": features["output"],
                "features": features,
            },
            "inference": {
                "patch_size_xyz": list(config.inference_patch_size_xyz),
                "overlap": 0.25,
                "sigma_scale": 0.125,
                "tta_flip_axes_zyx": [list(axes) for axes in MIRRORED_PASSES_ZYX],
                "organ_passes": "mean",  # what choose_thresholds scored the organ thresholds on
                "flag_below": 0.75,
            },
            "postprocessing": {
                "threshold": report["validation"].get("threshold", 0.5), "keep_near_mm": 10.0, "min_satellite_ml": 0.1, "min_tumor_ml": 0.05, "fill_holes": True,
            },
            "organ_threshold": report["validation"].get("organ_threshold") or 0.5,
            "organ_min_ml": DEFAULT_ORGAN_MIN_ML,
            "training_range": train_range,
            "validation": report["validation"],
            "provenance": {
                "data": data,
                "training_cases": report["training_cases"],
                "epochs_run": report["epochs_run"],
                "best_epoch": report["best_epoch"],
                "exported_epoch": report.get("exported_epoch", "best validation score"),
                "stop_reason": report["stop_reason"],
                "device": report["device"],
                "training_minutes": report["training_minutes"],
                "recipe": {
                    "loss": "Dice + binary cross-entropy (MONAI DiceCELoss, sigmoid, batch Dice)",
                    "optimizer": f"AdamW lr {config.learning_rate} poly(0.9) decay, weight decay {config.weight_decay}",
                    "batch_size": config.batch_size,
                    "iterations_per_epoch": config.iterations_per_epoch,
                    "max_epochs": config.epochs,
                    "patience": config.patience,
                    "positive_fraction": config.positive_fraction,
                    "augmentation": "left-right flip; in-plane rotation +-15 deg, scaling +-10% (p 0.5); intensity "
                    "scale/shift +-0.15 (p 0.5); Gaussian noise sd 0.1 (p 0.3)",
                    "seed": config.seed,
                },
                "software": software_versions(TRAINING_LIBRARIES, python=True),
            },
        }
        if report.get("initialised_from"):  # fine-tuned: this run continued that model's training
            manifest["provenance"]["initialised_from"] = report["initialised_from"]
        if gate_available(structures):
            manifest["anatomy_gate"] = GateSettings().to_dict()
        synth_fraction = float(getattr(config, "synth_fraction", 0.0))
        if synth_fraction > 0:
            manifest["provenance"]["recipe"]["domain_randomisation"] = {
                "fraction": synth_fraction,
                "what": "images synthesised from the organ label map: random mean and spread per label and "
                "channel, partial-volume blur, bias field, lower resolution / thicker slices, ghosting, Rician "
                "noise, gamma; elastic deformation (p 0.3) of image and targets",
                "settings": SynthesisSettings().to_dict(),
            }
        manifest["model_card"] = "MODEL_CARD.md"
        files = {ONNX_FILE: onnx_path, "MODEL_CARD.md": model_card(manifest)}
        bundle = write_bundle(config.out, manifest, files, overwrite=config.overwrite)
    return bundle, difference
