"""Writing a fitted risk model as a risk-model bundle (`cervicalai fit`, the study report): the
manifest, model card and JSON documents that `scoring/risk_model.py` reads back."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from CervicalAILib.bundles.format import write_bundle
from CervicalAILib.contracts.feature_names import RADIOMICS_FAMILY, role_of
from CervicalAILib.core.atomic import to_json, write_text
from CervicalAILib.core.errors import OutputExistsError
from CervicalAILib.features.radiomic import load_settings
from CervicalAILib.io.case import ROLES
from CervicalAILib.research.fit.fit import software_versions
from CervicalAILib.research.fit.table import cohort_order
from CervicalAILib.scoring.patient import SCORE_LABELS
from CervicalAILib.scoring.risk_model import (
    COMBAT_FILE,
    MODEL_FILE,
    NOMOGRAM_FILE,
    SCORES_FILE,
    SELECTION_FILE,
    SPLIT_FILE,
    SYNTHETIC_STATEMENT,
    RiskModel,
    load_risk_model,
)


def _settings_yaml(value: Any) -> str:
    import yaml

    if isinstance(value, str):
        yaml.safe_load(value)  # must parse
        return value if value.endswith("\n") else value + "\n"
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=False)


def _radiomics_settings(result, roles: list[str], notes: list[str]) -> dict[str, str]:
    """YAML text per role: from the extraction sidecar, else the engine's default settings."""
    side = (result.table.sidecar or {}).get("radiomics_settings", {}) if result.table else {}
    out: dict[str, str] = {}
    for role in roles:
        if role in side:
            out[role] = _settings_yaml(side[role])
            continue
        try:
            out[role] = _settings_yaml(load_settings(role))
            notes.append(f"radiomics settings for {role} not in the feature sidecar: the engine's defaults were "
                         "bundled; check they are the ones that produced the features")
        except Exception:  # noqa: BLE001 - no settings for the role (or the package lacks them)
            notes.append(f"radiomics settings for {role} unknown (no sidecar, no engine default): the readout cannot "
                         "recompute Rad_score features until they are added")
    return out


def _encoders(result, families: list[str], notes: list[str]) -> list[dict[str, Any]]:
    side = (result.table.sidecar or {}).get("encoders", []) if result.table else []
    if isinstance(side, dict):
        side = [dict(v, family=k) if isinstance(v, dict) else {"family": k, "reference": v} for k, v in side.items()]
    out = []
    for family in families:
        match = [e for e in side if isinstance(e, dict) and e.get("family") == family]
        if match:
            entry = {k: match[0][k] for k in sorted(match[0])}
            out.append(entry)
        else:
            out.append({"family": family, "name": None, "version": None, "sha256": None})
            notes.append(f"encoder for {family} unknown (not in the feature sidecar)")
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def model_card(result, manifest: dict[str, Any]) -> str:
    """MODEL_CARD.md in plain words."""
    model = result.model
    spec_pos, spec_neg = model["positive"], model["negative"]
    lines = [f"# {manifest['name']} {manifest['version']}: {model['outcome_label']}", ""]
    if manifest.get("synthetic_training_data"):
        lines += [f"**{SYNTHETIC_STATEMENT}**", ""]
    lines += [
        "## What it predicts",
        "",
        f"The probability of **{spec_pos}** (versus {spec_neg}) for a patient with cervical cancer, from "
        "features of the primary tumour on pelvic MRI (radiomics -> Rad_score, deep features -> DL_score) and "
        "clinical variables, combined by logistic regression (the DLRC model of seed 004) and drawn as a nomogram.",
        "",
        f"Intended use: {manifest['intended_use']}",
        "",
        "## Inputs",
        "",
        f"- MRI sequences: {', '.join(manifest['inputs']['sequences']) or 'none'} (tumour mask on each)",
    ]
    for info in manifest["inputs"]["scores"].values():
        lines.append(f"- {info['label']} ({info['family']}): {len(info['features'])} feature(s) from "
                     f"{', '.join(info['sequences'])}")
    for var in manifest["inputs"]["clinical"]:
        unit = f" ({var['unit']})" if var.get("unit") else ""
        lines.append(f"- clinical: {var['label']}{unit}, {var['type']}")
    lines += [f"- centre: {manifest['inputs']['center']['harmonisation']}", ""]
    lines += ["## Model", "", "| Predictor | Coefficient |", "|---|---|", f"| (intercept) | {model['dlrc']['intercept']:.4f} |"]
    for column, coefficient in model["dlrc"]["coefficients"].items():
        lines.append(f"| {column} | {coefficient:.4f} |")
    cut = model["cutoffs"]["dlrc_probability"]
    lines += ["", f"Cut-off (maximum Youden index on the training cohort): probability >= {cut['cutoff']:.3f} "
              f"(training sensitivity {cut['sensitivity']:.2f}, specificity {cut['specificity']:.2f}).", ""]
    combat_applied = not str(result.combat_note).startswith("not applied")
    harmonised = ", ComBat-harmonised" if combat_applied else ""
    for score, family in model["scores"].items():
        fam = model["families"][family]
        lines += [f"### {'Rad_score' if score == 'rad_score' else 'DL_score'} ({family})", "",
                  f"Linear predictor of a logistic model on standardised{harmonised} features:", "",
                  "| Feature | Coefficient (per SD) |", "|---|---|", f"| (intercept) | {fam['intercept']:.4f} |"]
        for name, coefficient in zip(fam["features"], fam["coefficients"]):
            lines.append(f"| {name} | {coefficient:.4f} |")
        lines.append("")
    lines += ["## Training data", "", manifest["training_data"], ""]
    metrics = result.metrics
    lines += ["## Performance (AUC)", "", "| Cohort | n | events | Rad_score | DL_score | DLRC |", "|---|---|---|---|---|---|"]
    for cohort in cohort_order(list(metrics["auc"])):
        auc = metrics["auc"][cohort]
        lines.append(f"| {cohort} | {metrics['n'][cohort]} | {metrics['events'][cohort]} | {_fmt(auc.get('rad_score'))} | "
                     f"{_fmt(auc.get('dl_score'))} | {_fmt(auc.get('dlrc_probability'))} |")
    lines += ["", "Training AUCs are optimistic (the same cases chose the features); trust the validation cohorts. "
              "Confidence intervals and comparisons: `cervicalai evaluate` on cohort/scores.csv.", ""]
    lines += [
        "## How it was built",
        "",
        "Seed 004's chain on the training cohort only: "
        + ("ComBat harmonisation per centre (neuroHarmonize), " if combat_applied else f"ComBat {result.combat_note}; ")
        + "Mann-Whitney U "
        f"(p < {result.config.selection.mwu_p}), Spearman redundancy removal (|rho| > {result.config.selection.spearman_rho}, "
        "the feature with the smaller Mann-Whitney p kept), LASSO logistic regression with a cross-validated penalty, "
        "backward stepwise logistic regression by AIC; clinical variables by univariate tests "
        f"(p < {result.config.clinical_p}); the DLRC model by backward stepwise logistic regression by AIC. "
        "Every setting is in bundle.json (provenance) and every step's survivors in selection.json.",
        "",
        "## Limitations",
        "",
        "- A research model. It has not been validated prospectively or on patients outside the cohorts above.",
        "- Radiomics and deep features depend on the scanner, protocol, segmentation and software versions; a centre not "
        "seen in training is harmonised with the pooled reference only, and the readout warns about it.",
        "- Values outside the training ranges (bundle model.json) are extrapolations; the readout warns about them.",
        "- The probability is only as good as the tumour mask: review the segmentation first.",
    ]
    if manifest.get("synthetic_training_data"):
        lines.append("- Trained on synthetic images; its coefficients say nothing about real patients.")
    return "\n".join(lines) + "\n"


def _csv(frame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def build_manifest(result, name: str, version: str, synthetic: bool, training_data: str | None = None,
                   intended_use: str | None = None, include_case_lists: bool = True) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(manifest, files, notes) for a fit result; `write_risk_bundle` writes them."""

    model = result.model
    notes: list[str] = []
    training = result.training
    n_train = len(training)
    n_events = int(training[result.config.endpoint].sum())
    centers = sorted(set(training["center"].dropna())) if "center" in training else []
    scores_inputs: dict[str, Any] = {}
    roles_used: set[str] = set()
    for score, family in model["scores"].items():
        features = model["families"][family]["features"]
        roles = sorted({role_of(f) for f in features})
        roles_used.update(roles)
        scores_inputs[score] = {"label": SCORE_LABELS[score], "family": family, "sequences": roles, "features": features,
                                "used_by_dlrc": any(t["name"] == score for t in model["dlrc"]["terms"])}
    rad_family = model["scores"].get("rad_score")
    rad_roles = scores_inputs["rad_score"]["sequences"] if rad_family else []
    settings = _radiomics_settings(result, rad_roles, notes)
    deep_families = [f for f in model["scores"].values() if f != RADIOMICS_FAMILY]
    encoders = _encoders(result, deep_families, notes)
    for info in scores_inputs.values():
        if info["family"] != RADIOMICS_FAMILY:
            info["encoder"] = next(e for e in encoders if e["family"] == info["family"])
    clinical_inputs = []
    for term in model["dlrc"]["terms"]:
        if term["kind"] == "score":
            continue
        entry = {k: v for k, v in term.items() if k not in ("columns", "kind")}
        if term["name"] in model["training_ranges"]["clinical"]:
            entry["training_range"] = model["training_ranges"]["clinical"][term["name"]]
        clinical_inputs.append(entry)
    statement = training_data or (
        f"{n_train} training cases ({n_events} {model['positive']}, {n_train - n_events} {model['negative']}) from "
        f"centre(s) {', '.join(centers) or 'unknown'}; feature table "
        f"{result.table.path.name if result.table and result.table.path else 'in memory'}"
        + (f" (sha256 {result.table.sha256})" if result.table and result.table.sha256 else "") + "."
    )
    if synthetic and SYNTHETIC_STATEMENT not in statement:
        statement = f"{statement} {SYNTHETIC_STATEMENT}"
    use = intended_use or (
        f"Research use: estimate the probability of {model['positive']} before treatment in cervical cancer, as a "
        "second opinion for a radiologist, from a reviewed tumour mask on pelvic MRI plus clinical values. "
        "Not a diagnostic device."
    )
    sidecar = dict(result.table.sidecar) if result.table else {}
    extraction = {k: v for k, v in sidecar.items() if k not in ("radiomics_settings",)}
    provenance = {
        "fit": result.config.as_dict(),
        "software": software_versions(),
        "feature_table": {
            "file": result.table.path.name if result.table and result.table.path else None,
            "sha256": result.table.sha256 if result.table else None,
            "rows": int(len(result.cases)),
            "families": {f: len(c) for f, c in result.table.families.items()} if result.table else {},
        },
        "extraction": extraction,
        "cases": {c: int((result.cases["cohort"] == c).sum()) for c in cohort_order(result.cases["cohort"].unique().tolist())},
        "excluded_cases": int((result.cases["cohort"] == "excluded").sum()),
        "dropped_features": {f: len(v) for f, v in result.dropped_features.items()},
        "combat": result.combat_note,
        "deep_family": {"chosen": result.deep_family, "cv_auc": result.family_cv_auc},
        "clinical_retained": result.clinical_retained,
        "notes": notes,
    }
    artefacts = {"model": MODEL_FILE, "combat": COMBAT_FILE, "nomogram": NOMOGRAM_FILE, "selection": SELECTION_FILE}
    if include_case_lists:
        artefacts.update({"split": SPLIT_FILE, "scores": SCORES_FILE})
    manifest = {
        "name": name,
        "version": version,
        "task": "risk-model",
        "endpoint": model["endpoint"],
        "endpoint_definition": {"column": model["endpoint_column"], "positive": model["positive"],
                                "negative": model["negative"], "outcome_label": model["outcome_label"]},
        "intended_use": use,
        "training_data": statement,
        "synthetic_training_data": bool(synthetic),
        "inputs": {
            "sequences": [r for r in ROLES if r in roles_used],
            "features": sorted({f for s in scores_inputs.values() for f in s["features"]}),
            "scores": scores_inputs,
            "clinical": clinical_inputs,
            "center": {"harmonisation": result.combat_note, "training_centers": centers,
                       "unknown_center": "pooled reference of the training centres, with a warning"},
            "radiomics_settings": {role: f"radiomics/{role}.yaml" for role in settings},
            "encoders": encoders,
        },
        "outputs": [
            {"name": "probability", "description": f"probability of {model['positive']} (DLRC model)"},
            {"name": "linear_predictor", "description": "DLRC log-odds"},
            {"name": "rad_score", "description": "radiomics score (log-odds scale)"},
            {"name": "dl_score", "description": "deep-learning score (log-odds scale)"},
            {"name": "nomogram", "description": "points per predictor and total points"},
        ],
        "artefacts": artefacts,
        "metrics": {"auc": result.metrics.get("auc", {}), "n": result.metrics.get("n", {}),
                    "events": result.metrics.get("events", {}), "cutoffs": model["cutoffs"]},
        "provenance": provenance,
    }
    selection = {
        "families": {f: {"log": m.log, "features": m.features} for f, m in result.families.items()},
        "family_cv_auc": result.family_cv_auc,
        "deep_family": result.deep_family,
        "clinical_tests": result.clinical_tests,
        "clinical_retained": result.clinical_retained,
        "dlrc": result.dlrc_log,
        "dropped_features": result.dropped_features,
        "excluded_cases": [{"case_id": c, "reason": r} for c, r in
                           zip(result.cases["case_id"], result.cases["reason"]) if r],
        "warnings": result.warnings,
    }
    files: dict[str, Any] = {
        # model.json, combat.json, nomogram.json: the fitted parts' to_dict (what load_risk_model reads back)
        **{name: to_json(document) for name, document in result.risk_model().to_documents().items()},
        SELECTION_FILE: to_json(selection),
    }
    for role, text in settings.items():
        files[f"radiomics/{role}.yaml"] = text
    if include_case_lists:
        files[SPLIT_FILE] = _csv(result.cases)
        files[SCORES_FILE] = _csv(result.scores)
    files["MODEL_CARD.md"] = model_card(result, manifest)
    return manifest, files, notes


def write_risk_bundle(result, out_dir: str | Path, name: str, version: str = "1.0.0", synthetic: bool = False,
                      training_data: str | None = None, intended_use: str | None = None, overwrite: bool = False,
                      case_lists_dir: str | Path | None = None) -> RiskModel:
    """Write the bundle for a fit result; return it loaded back (hashes verified).

    With `case_lists_dir`, split.csv and scores.csv go there instead of into the bundle (for
    bundles that will be shared beyond the team that holds the case IDs).
    """
    if case_lists_dir is not None and not overwrite:
        existing = [p for p in (Path(case_lists_dir) / "split.csv", Path(case_lists_dir) / "scores.csv") if p.exists()]
        if existing:
            raise OutputExistsError(f"{existing[0]}: exists (use --overwrite to replace the case lists)")
    manifest, files, _ = build_manifest(result, name, version, synthetic, training_data, intended_use,
                                        include_case_lists=case_lists_dir is None)
    write_bundle(out_dir, manifest, files, overwrite=overwrite)
    if case_lists_dir is not None:
        write_text(Path(case_lists_dir) / "split.csv", _csv(result.cases))
        write_text(Path(case_lists_dir) / "scores.csv", _csv(result.scores))
    return load_risk_model(out_dir)
