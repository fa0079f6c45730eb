"""Paper 004 (Bao et al., the DLRC nomogram) reproduced end to end on a synthetic multi-centre cohort
(`cervicalai study-report`). "Study" in the names of the engine means the imaging study; this package
reproduces a clinical study, hence its own name.

    from CervicalAILib.research.study_report import StudyReportConfig, run_study_report
    run_study_report(StudyReportConfig(out="report/", seed=4, scale=1.0, jobs=2))

Steps, each reusing the engine's own parts:

1. cohort: `synth.generate_cohort` with five centres (shares of paper 004's 685/207/97/85/21),
   1100 x scale cases; centre A is split 7:3 (stratified by LNM, one split for both endpoints) into training and
   internal validation, centres B-E form the external validation cohort (paper 004: 481/204/410).
2. features: `cohort.extract_cohort` (radiomics of T2WI, DWI, CE-T1WI on each sequence's own
   grid with its own tumour mask; deep features of the 2D and 3D encoders). Resumable.
3. models: `research.fit.fit_risk_model` per endpoint (LNM; stage group), training cohort only:
   ComBat, Mann-Whitney U, Spearman, LASSO, stepwise AIC -> Rad_score and DL_score (the deep family
   with the best cross-validated training AUC), clinical variables (p < 0.05), DLRC by stepwise AIC.
4. statistics: `stats.evaluate_scores` per cohort (Table 2 incl. the SRA rule, Table 4 DeLong,
   Youden cut-offs of the training cohort carried to validation), ROC, calibration with
   Hosmer-Lemeshow, decision curves; the generator's oracle probability (the best any model can
   do) with its AUC per cohort and DeLong against the DLRC.
5. report: Markdown with tables and figures, CSV tables, metrics.json, and the two risk-model
   bundles (`dlrc-lnm`, `dlrc-stage-group`) with their provenance, plus the models fitted besides
   those two (the LNM model without contrast).

A rerun of the same command resumes: an existing matching cohort and feature table are reused,
a partial extraction continues where it stopped.

The modules, one job each: `config` (the design, the options, the variants a run may fit), `run` (steps 1-3
and the whole run), `evaluate` (step 4 per model), `variants` (a variant against the full model), `figures`,
`tables`, `metrics` (metrics.json), `markdown` (study_report.md), `paper004` (the published figures, side
by side).
"""

from CervicalAILib.research.study_report.config import StudyReportConfig, StudyReportResult
from CervicalAILib.research.study_report.run import run_study_report

__all__ = ["StudyReportConfig", "StudyReportResult", "run_study_report"]
