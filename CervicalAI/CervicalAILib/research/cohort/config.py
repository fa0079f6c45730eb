"""What a cohort extraction computes: sequences, pyradiomics settings, encoder bundles, mask policy.

`ExtractionConfig.build(...)` validates the choices once in the calling process; `fingerprint()` and
`components()` say what decides the feature values (a resumed run must match them: the digests of the
parts folder, research/cohort/parts.py); `feature_plan()` is the FeaturePlan (features/plan.py) the
workers apply to each case.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from CervicalAILib.bundles.defaults import resolve_bundle
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.core.provenance import software_versions as core_software_versions
from CervicalAILib.features.deep import load_encoder
from CervicalAILib.features.plan import FeaturePlan
from CervicalAILib.features.radiomic import default_settings_path, load_settings, settings_sha256
from CervicalAILib.io.case import ROLES

# Seed 004 extracted features from CE-T1WI, DWI and FS-T2WI; the ADC map is optional.
DEFAULT_ROLES = ("T2W", "DWI", "CET1")
DEFAULT_ENCODERS = ("2d", "3d")  # aliases of the model catalogue (bundles/catalog.py): the shipped encoders
PARTS_SCHEMA = "cervicalai.extraction-parts/1"


@dataclass


class ExtractionConfig:
    """What is extracted: sequences, pyradiomics settings, encoder bundles, mask policy.

    Build it with `ExtractionConfig.build(...)`, which validates settings and loads (verifies)
    the encoder bundles once in the calling process.
    """

    roles: tuple[str, ...] = DEFAULT_ROLES
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> pyradiomics parameters
    settings_text: dict[str, str] = field(default_factory=dict)  # role -> YAML text (for the sidecar)
    settings_source: dict[str, str] = field(default_factory=dict)  # role -> file it came from
    encoders: list[dict[str, Any]] = field(default_factory=list)  # {"path", "family", "name", "version", "sha256"}
    register: bool = True  # register on the fly a sequence that has neither its own mask nor a transform
    # labels/<mask_label> (T2WI grid) for every sequence, carried by the transforms as in the readout
    # (a second reader's or the automatic contour, for the ICC filter); None: each sequence's own label
    mask_label: str | None = None

    @classmethod
    def build(cls, roles: Sequence[str] = DEFAULT_ROLES, settings_dir: str | Path | None = None,
              encoders: Sequence[str | Path] | None = DEFAULT_ENCODERS, register: bool = True,
              mask_label: str | None = None) -> ExtractionConfig:
        """Validate the choices. `settings_dir` holds `<ROLE>.yaml` pyradiomics files (default: the
        engine's shipped settings); `encoders` are "2d"/"3d" (the default bundles) or bundle folders;
        None or [] means radiomics only."""
        roles = _check_roles(roles)
        if mask_label is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", mask_label):
            raise InputError(f"mask label {mask_label!r} must be a label file name without extension, e.g. tumor_reader2")
        settings, text, source = {}, {}, {}
        for role in roles:
            path = default_settings_path(role)
            if settings_dir is not None:
                path = Path(settings_dir) / f"{role}.yaml"
                if not path.is_file():
                    raise InputError(f"no pyradiomics settings for {role} ({role}.yaml expected in the settings folder)",
                                     settings_dir)
            settings[role] = load_settings(role, path)
            text[role] = path.read_text(encoding="utf-8")
            source[role] = "engine default" if settings_dir is None else path.name
        return cls(roles=roles, settings=settings, settings_text=text, settings_source=source,
                   encoders=resolve_encoders(encoders or []), register=register, mask_label=mask_label)

    def fingerprint(self) -> dict[str, Any]:
        """Everything that decides the feature values; a resumed run must match it exactly."""
        return {
            "schema": PARTS_SCHEMA,
            "roles": list(self.roles),
            "radiomics_settings_sha256": {role: settings_sha256(self.settings[role]) for role in self.roles},
            "encoders": [{k: e[k] for k in ("family", "name", "version", "sha256")} for e in self.encoders],
            "register_on_the_fly": bool(self.register),
            "software": software_versions(),
        } | ({"mask_label": self.mask_label} if self.mask_label else {})

    def components(self) -> dict[str, str]:
        """The units a part is stored and reused in: radiomics per sequence, deep features per encoder.

        Maps the component name ("radiomics:DWI", "deep:dl-resnet2d") to a digest of everything that
        decides its values, so that a run with other options reuses what is still valid.
        """
        fingerprint = self.fingerprint()
        common = {"software": fingerprint["software"], "register_on_the_fly": fingerprint["register_on_the_fly"]}
        if self.mask_label:
            common["mask_label"] = self.mask_label
        out = {}
        for role in self.roles:
            out[f"radiomics:{role}"] = _digest({"role": role, "settings": fingerprint["radiomics_settings_sha256"][role],
                                                **common})
        for encoder, reference in zip(self.encoders, fingerprint["encoders"]):
            roles = [r for r in self.roles if r in encoder["roles"]]
            out[f"deep:{encoder['family']}"] = _digest({"encoder": reference, "roles": roles, **common})
        return out

    def feature_plan(self, components: Sequence[str] | None = None) -> FeaturePlan:
        """The features of `components` (default: all): the readout's FeaturePlan, every feature of each part."""
        wanted = set(self.components() if components is None else components)
        return FeaturePlan.full([r for r in self.roles if f"radiomics:{r}" in wanted], self.settings,
                                [e for e in self.encoders if f"deep:{e['family']}" in wanted])

    def task_view(self, components: Sequence[str] | None = None) -> dict[str, Any]:
        """The picklable part a worker needs, restricted to `components` (default: all)."""
        return {"roles": list(self.roles), "register": self.register, "mask_label": self.mask_label,
                "plan": self.feature_plan(components)}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    roles = [str(r).strip() for r in roles if str(r).strip()]
    if not roles:
        raise InputError(f"no sequence given (choose from {', '.join(ROLES)})")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InputError(f"unknown sequence role(s) {', '.join(unknown)} (known: {', '.join(ROLES)})")
    duplicated = sorted({r for r in roles if roles.count(r) > 1})
    if duplicated:
        raise InputError(f"sequence role(s) given twice: {', '.join(duplicated)}")
    return tuple(r for r in ROLES if r in roles)  # channel order, whatever the order given


def resolve_encoders(specs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Encoder bundles from aliases of the model catalogue ("2d", "3d") or folders; loaded and verified here."""
    resolved: list[dict[str, Any]] = []
    for spec in specs:
        text = str(spec).strip()
        if not text:
            continue
        try:
            path = resolve_bundle(text, "encoder")
        except BundleError as exc:
            raise InputError(f"the default {text} encoder is not installed ({exc}); give an encoder bundle folder "
                             "with --encoders PATH, or extract radiomics only with --no-deep") from None
        encoder = load_encoder(path)
        reference = encoder.reference()
        if any(r["family"] == reference["family"] for r in resolved):
            raise InputError(f"two encoders give the same feature family {reference['family']!r} "
                             f"({path}); their columns would collide")
        resolved.append({"path": str(Path(path).resolve()), "roles": list(encoder.roles), **reference})
    return resolved


def software_versions() -> dict[str, str]:
    """Versions of what computes the features (a resumed run must use the same)."""
    return core_software_versions({"pyradiomics": "radiomics", "SimpleITK": "SimpleITK", "numpy": "numpy",
                                   "onnxruntime": "onnxruntime"})
