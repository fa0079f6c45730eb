"""One feature plan: what to extract, built once, applied to every case (pyradiomics' "configure once, apply many").

The per-patient readout and cohort extraction compute features the same way because both apply a
`FeaturePlan`:

    plan = FeaturePlan.for_models([request_of_lnm_model, request_of_stage_model], roles_present)  # readout
    plan = FeaturePlan.full(roles, settings, encoders)                                             # extraction
    values = plan.apply(images, masks, warnings=warnings)      # masks: role -> SequenceMask (own grids)
    values.for_request(request)        # one model's features;  values.by_component: per component

A plan is plain data (pyradiomics settings, feature names, encoder bundle paths; no sessions), so it
pickles to process-pool and Dask workers. Its steps:
- radiomics: one pyradiomics call per sequence and settings (by SHA-256), for the union of the names
  the requests want (None: every feature the settings give), so that image types two models share
  (a wavelet, a LoG sigma) are filtered once;
- deep: one encoder run per encoder bundle (by bundle.json SHA-256) and sequences; a later request
  whose features an earlier run already gave reuses them.
Each model's features come from its own settings and encoder, so two models fitted on differently
extracted features never share a value by name alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import SimpleITK as sitk

from CervicalAILib.bundles.defaults import find_bundle
from CervicalAILib.contracts.feature_names import parse_feature_name
from CervicalAILib.features.deep import extract_deep_features, load_encoder
from CervicalAILib.features.radiomic import extract, settings_sha256


@dataclass(frozen=True)
class EncoderRef:
    """An encoder bundle as a risk model or an extraction names it (bundle.json SHA-256)."""

    family: str
    name: str | None
    version: str | None
    sha256: str | None


@dataclass(frozen=True)
class FeatureRequest:
    """What one model wants: its feature names, its radiomics settings per sequence, its encoders."""

    label: str
    names: tuple[str, ...]
    radiomics_settings: Mapping[str, dict[str, Any]]  # role -> parsed pyradiomics settings
    encoders: tuple[EncoderRef, ...] = ()


@dataclass(frozen=True)
class RadiomicsStep:
    component: str  # "radiomics:T2W" (extraction) or "radiomics:T2W:<settings sha256>" (readout)
    role: str
    settings: dict[str, Any]
    settings_sha256: str
    names: tuple[str, ...] | None  # None: every feature the settings give


@dataclass(frozen=True)
class DeepStep:
    component: str  # "deep:dl-resnet2d" (extraction) or "deep:<encoder key>" (readout)
    family: str
    path: str  # the encoder bundle folder
    roles: tuple[str, ...] | None  # None: every sequence of the plan the encoder takes
    names: tuple[str, ...] | None  # None: every feature it gives


@dataclass
class FeatureValues:
    """The plan's values, per component (name -> value; NaN where pyradiomics gave none)."""

    by_component: dict[str, dict[str, float]] = field(default_factory=dict)
    radiomics_of: dict[tuple[str, str], str] = field(default_factory=dict)  # (role, settings sha256) -> component
    deep_of: dict[str, str] = field(default_factory=dict)  # encoder bundle.json sha256 or family -> component

    def for_request(self, request: FeatureRequest) -> dict[str, float]:
        """One request's features, in its names' order grouped as the readout lists them: radiomics per
        sequence, then deep features per encoder; a sequence the case lacks gives none (nothing imputed)."""
        radiomics, deep = _needed_by_role(request.names)
        values: dict[str, float] = {}
        for role, names in radiomics.items():
            settings = request.radiomics_settings.get(role)
            component = None if settings is None else self.radiomics_of.get((role, settings_sha256(settings)))
            if component is not None:
                found = self.by_component[component]
                values.update({name: found[name] for name in names})
        for family in deep:
            encoder = next((e for e in request.encoders if e.family == family), None)
            component = self.deep_of.get(encoder.sha256 or family) if encoder is not None else None
            if component is not None:
                found = self.by_component[component]
                values.update({n: found[n] for n in request.names if _family(n) == family and n in found})
        return values


def _family(name: str) -> str:
    return parse_feature_name(name).family


def _needed_by_role(names: Sequence[str]) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """Radiomics feature names per role, and deep families -> roles, of `names`."""
    radiomics: dict[str, list[str]] = {}
    deep: dict[str, set[str]] = {}
    for name in names:
        parsed = parse_feature_name(name)
        if parsed.is_deep:
            deep.setdefault(parsed.family, set()).add(parsed.role)
        else:
            radiomics.setdefault(parsed.role, []).append(name)
    return radiomics, deep


@dataclass(frozen=True)
class FeaturePlan:
    radiomics: tuple[RadiomicsStep, ...] = ()
    deep: tuple[DeepStep, ...] = ()

    @classmethod
    def for_models(cls, requests: Sequence[FeatureRequest], roles_present: Sequence[str] | set[str]) -> FeaturePlan:
        """The features `requests` (the risk models in use) need, for a case with these sequences.

        A sequence the case lacks is skipped; the encoder of a family is looked up (catalogue, or a
        site's own folder) only when the case has one of its sequences (BundleError if it is missing).
        """
        present = set(roles_present)
        names_of: dict[tuple[str, str], dict[str, None]] = {}
        settings_of: dict[tuple[str, str], dict[str, Any]] = {}
        for request in requests:
            for role, names in _needed_by_role(request.names)[0].items():
                if role in present:
                    settings = dict(request.radiomics_settings[role])
                    slot = (role, settings_sha256(settings))
                    settings_of[slot] = settings
                    names_of.setdefault(slot, {}).update(dict.fromkeys(names))
        radiomics = tuple(RadiomicsStep(f"radiomics:{role}:{key}", role, settings_of[(role, key)], key, tuple(names))
                          for (role, key), names in names_of.items())
        deep: list[DeepStep] = []
        for request in requests:
            for family, roles in _needed_by_role(request.names)[1].items():
                used = tuple(r for r in sorted(roles) if r in present)
                if not used:
                    continue
                entry = next(e for e in request.encoders if e.family == family)
                bundle = find_bundle(entry.name, entry.version, entry.sha256, "encoder", f"the risk model ({family} features)")
                names = tuple(n for n in request.names if _family(n) == family)
                deep.append(DeepStep(f"deep:{entry.sha256 or family}", family, str(bundle.path), used, names))
        return cls(radiomics, tuple(deep))

    @classmethod
    def full(cls, roles: Sequence[str], settings: Mapping[str, dict[str, Any]],
             encoders: Sequence[Mapping[str, Any]]) -> FeaturePlan:
        """Every feature of `roles` (cohort extraction): all radiomics of each role with its settings,
        all deep features of each encoder (`{"path", "family", ...}`) for the roles it takes."""
        radiomics = tuple(RadiomicsStep(f"radiomics:{role}", role, settings[role], settings_sha256(settings[role]), None)
                          for role in roles)
        deep = tuple(DeepStep(f"deep:{e['family']}", e["family"], str(e["path"]), None, None) for e in encoders)
        return cls(radiomics, deep)

    def apply(
        self,
        images: Mapping[str, sitk.Image],
        masks: Mapping[str, Any],
        *,
        warnings: list[str],
        device: str = "cpu",
        threads: int | None = None,
        lap=None,
    ) -> FeatureValues:
        """The plan's features of one case. images: role -> image on its own grid; masks: role ->
        SequenceMask on that grid. Warnings of pyradiomics and the encoders are appended (once each).
        lap(name), when given, is called after each step (extraction's CPU timings)."""
        values = FeatureValues()
        for step in self.radiomics:
            result = extract({step.role: images[step.role]}, masks[step.role].mask, settings={step.role: step.settings},
                             features=None if step.names is None else list(step.names))
            values.by_component[step.component] = result.features
            values.radiomics_of[(step.role, step.settings_sha256)] = step.component
            warnings.extend(w for w in result.warnings if w not in warnings)
            if lap is not None:
                lap(f"radiomics {step.role}")
        for step in self.deep:
            done = values.by_component.get(step.component)
            if done is not None and step.names is not None and all(n in done for n in step.names):
                continue  # an earlier request's run gave these features
            encoder = load_encoder(step.path, device=device, threads=threads)
            roles = list(step.roles) if step.roles is not None else [r for r in images if r in encoder.roles]
            found: dict[str, float] = {}
            if roles:
                found = extract_deep_features({r: images[r] for r in roles}, {r: masks[r].mask for r in roles}, encoder,
                                              roles=roles, warnings=warnings)
            values.by_component[step.component] = {**(done or {}), **found}
            values.deep_of[step.component.removeprefix("deep:")] = step.component
            if lap is not None:
                lap(f"deep {step.family}")
        return values
