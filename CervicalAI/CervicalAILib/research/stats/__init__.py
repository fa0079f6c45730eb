"""Validation statistics (seed 004) and the feature-reproducibility filter.

- `roc`: ROC curve, AUC, DeLong variance / CI, paired and unpaired DeLong tests (= R pROC)
- `thresholds`: maximum-Youden cut-off, accuracy / sensitivity / specificity / PPV / NPV, Wilson CIs
- `calibration`: Hosmer-Lemeshow test (= R ResourceSelection::hoslem.test), calibration curve
- `decision_curve`: net benefit of models, treat-all and treat-none (= dcurves)
- `reproducibility`: vectorised ICC(3,1) / ICC(2,1) per feature (= pingouin), ICC > 0.75 filter
- `evaluate`: all of the above for several scores and cohorts (the metrics.json structure)
- `tables`, `figures`: seed-004 Tables 2 and 4 (CSV + Markdown), ROC / calibration / DCA figures

Needs numpy, scipy and pandas (the research extra); matplotlib only for `figures`.
"""

from CervicalAILib.research.stats.calibration import (
    HosmerLemeshowResult,
    calibration_curve,
    hosmer_lemeshow,
    r_quantile_type7,
)
from CervicalAILib.research.stats.decision_curve import (
    decision_curves,
    net_benefit,
    parse_threshold_range,
    treat_all_net_benefit,
)
from CervicalAILib.research.stats.evaluate import (
    cutoffs_from,
    evaluate_scores,
    evaluate_table,
    write_evaluation,
)
from CervicalAILib.research.stats.reproducibility import (
    icc,
    icc_table,
    read_feature_table,
    reproducible_features,
)
from CervicalAILib.research.stats.roc import (
    AucResult,
    DelongTest,
    RocCurve,
    auc,
    auc_ci,
    delong_covariance,
    delong_paired_test,
    delong_unpaired_test,
    roc_curve,
)
from CervicalAILib.research.stats.tables import table2, table2_rows, table4, table4_rows
from CervicalAILib.research.stats.thresholds import (
    DiagnosticMetrics,
    diagnostic_metrics,
    metrics_at_cutoff,
    wilson_ci,
    youden_cutoff,
)

__all__ = [
    "AucResult", "DelongTest", "DiagnosticMetrics", "HosmerLemeshowResult", "RocCurve", "auc", "auc_ci",
    "calibration_curve", "cutoffs_from", "decision_curves", "delong_covariance", "delong_paired_test", "delong_unpaired_test",
    "diagnostic_metrics", "evaluate_scores", "evaluate_table", "hosmer_lemeshow", "icc", "icc_table",
    "metrics_at_cutoff", "net_benefit", "parse_threshold_range", "r_quantile_type7", "read_feature_table",
    "reproducible_features", "roc_curve", "table2", "table2_rows", "table4", "table4_rows", "treat_all_net_benefit",
    "wilson_ci", "write_evaluation", "youden_cutoff",
]
