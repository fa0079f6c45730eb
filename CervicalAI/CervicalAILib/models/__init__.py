"""Model bundles, scores, the DLRC logistic model and its nomogram.

Fitting (research side, `cervicalai fit`):
    table.read_feature_table(path) -> FeatureTable        feature table + sidecar, checked
    fit.fit_risk_model(table, FitConfig) -> FitResult     seed 004's chain, ComBat, DLRC, cohort scores
    risk_bundle.write_risk_bundle(result, out_dir, name)  the risk-model bundle (format: risk_bundle.py)

Per patient (readout side):
    risk_bundle.load_risk_model(path) -> RiskModel        verified bundle; .required_features,
                                                          .required_sequences, .clinical_inputs,
                                                          .radiomics_settings(role), .encoders, .nomogram
    scores.score_patient(model, features, clinical, center) -> dict   Rad_score, DL_score, probability,
                                                          nomogram points, warnings, unavailable
    nomogram.render_nomogram(model.nomogram, "nomogram.png", patient=result["nomogram"]["values"])

Building blocks: selection (MWU, Spearman, LASSO, stepwise AIC), logistic, clinical, combat,
simulate (synthetic feature tables with known signal), bundle (the generic bundle format).
"""
