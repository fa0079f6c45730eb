"""ICC(3,1) / ICC(2,1) per feature against pingouin's intraclass_corr, the ICC > 0.75 filter and `cervicalai icc`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin
import pytest

from CervicalAILib.cli import main
from CervicalAILib.core.errors import InputError
from CervicalAILib.research.stats import icc, icc_table, reproducible_features
from CervicalAILib.research.stats.reproducibility import feature_columns

FEATURES = ["CET1_original_firstorder_Mean", "CET1_wavelet-HLH_gldm_SmallDependenceEmphasis",
            "DWI_original_shape_Sphericity", "T2W_original_glcm_Idm", "ADC_original_firstorder_Range",
            "CET1_dl-resnet2d_F0001"]


def _reader_tables(seed: int = 0, n: int = 30):
    """Two readers' feature tables: features with decreasing reproducibility, reader 2 with an offset."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, len(FEATURES))) * [1.0, 2.0, 0.5, 3.0, 10.0, 1.0]
    noise = [0.05, 0.5, 0.5, 1.0, 40.0, 0.2]
    ids = [f"case{i:03d}" for i in range(n)]
    a = pd.DataFrame(truth + rng.normal(size=truth.shape) * noise, columns=FEATURES)
    b = pd.DataFrame(truth + 0.4 + rng.normal(size=truth.shape) * noise, columns=FEATURES)
    a.insert(0, "case_id", ids)
    b.insert(0, "case_id", ids)
    a["age"] = b["age"] = rng.integers(30, 70, size=n)  # clinical column: not a feature
    return a, b


def _pingouin(a, b, feature, kind):
    long = pd.concat([a[["case_id", feature]].assign(reader="a"), b[["case_id", feature]].assign(reader="b")])
    table = pingouin.intraclass_corr(long, targets="case_id", raters="reader", ratings=feature,
                                     nan_policy="omit").set_index("Type")
    return table.loc["ICC(C,1)" if kind == "ICC3" else "ICC(A,1)"]


@pytest.mark.parametrize("kind", ["ICC3", "ICC2"])
def test_icc_equals_pingouin_for_every_feature(kind):
    a, b = _reader_tables()
    b.loc[4, FEATURES[2]] = np.nan  # one missing value: that case is left out of that feature only
    result = icc_table(a, b, kind=kind)
    assert list(result.index) == FEATURES  # 'age' is not a {ROLE}_ feature
    for feature in FEATURES:
        ref = _pingouin(a, b, feature, kind)
        row = result.loc[feature]
        assert row["icc"] == pytest.approx(ref["ICC"], abs=1e-10)
        assert row["F"] == pytest.approx(ref["F"], rel=1e-10)
        assert row["p"] == pytest.approx(ref["pval"], rel=1e-8, abs=1e-300)
        # pingouin rounds its interval to two decimals
        assert row["ci_low"] == pytest.approx(ref["CI95"][0], abs=0.005 + 1e-9)
        assert row["ci_high"] == pytest.approx(ref["CI95"][1], abs=0.005 + 1e-9)
    assert result.loc[FEATURES[2], "n_cases"] == 29 and result.loc[FEATURES[0], "n_cases"] == 30


def test_systematic_offset_lowers_icc2_not_icc3():
    a, b = _reader_tables()
    b2 = b.copy()
    b2[FEATURES[0]] += 5.0
    assert icc(a, b2, "ICC3")[FEATURES[0]] == pytest.approx(icc(a, b, "ICC3")[FEATURES[0]], abs=1e-12)
    assert icc(a, b2, "ICC2")[FEATURES[0]] < icc(a, b, "ICC2")[FEATURES[0]] - 0.5


def test_rows_are_matched_by_case_id_not_position():
    a, b = _reader_tables()
    shuffled = b.sample(frac=1.0, random_state=1).reset_index(drop=True)
    pd.testing.assert_series_equal(icc(a, b), icc(a, shuffled))
    result = icc(a, shuffled.iloc[:25])  # five cases only in the first table: left out
    assert icc_table(a, shuffled.iloc[:25])["n_cases"].eq(25).all()
    assert np.isfinite(result).all()


def test_filter_keeps_icc_strictly_above_threshold_and_never_nan():
    values = pd.Series({"f1": 0.9, "f2": 0.75, "f3": np.nan, "f4": 0.76, "f5": -0.2})
    assert reproducible_features(values) == ["f1", "f4"]
    assert reproducible_features(values, threshold=0.5) == ["f1", "f2", "f4"]
    a, b = _reader_tables()
    kept = reproducible_features(icc(a, b))
    assert FEATURES[0] in kept and FEATURES[4] not in kept  # reproducible kept, noisy dropped


def test_constant_feature_has_no_icc():
    a, b = _reader_tables()
    a[FEATURES[1]] = 1.0
    b[FEATURES[1]] = 1.0
    assert np.isnan(icc(a, b)[FEATURES[1]])
    assert FEATURES[1] not in reproducible_features(icc(a, b))


def test_plain_tables_use_every_numeric_column():
    frame = pd.DataFrame({"case_id": ["a"], "f1": [1.0], "label": ["x"], "flag": [True]})
    assert feature_columns(frame) == ["f1"]


def test_bad_tables_are_refused():
    a, b = _reader_tables()
    with pytest.raises(InputError, match="duplicate case_id"):
        icc(pd.concat([a, a.iloc[:1]]), b)
    with pytest.raises(InputError, match="share 0 case_id"):
        icc(a, b.assign(case_id=[f"other{i}" for i in range(len(b))]))
    with pytest.raises(InputError, match="no numeric feature column in common"):
        icc(a[["case_id", FEATURES[0]]], b[["case_id", FEATURES[1]]])
    with pytest.raises(InputError, match="ICC kind"):
        icc(a, b, kind="ICC1")


def test_cli_writes_icc_csv_and_kept_features(tmp_path, capsys):
    a, b = _reader_tables()
    a.to_csv(tmp_path / "reader1.csv", index=False)
    b.to_parquet(tmp_path / "reader2.parquet")
    out = tmp_path / "icc"
    assert main(["icc", str(tmp_path / "reader1.csv"), str(tmp_path / "reader2.parquet"), "--out", str(out),
                 "--kind", "ICC2", "--threshold", "0.8"]) == 0
    table = pd.read_csv(out / "icc.csv")
    expected = icc_table(a, b, "ICC2")
    assert table["feature"].tolist() == FEATURES
    np.testing.assert_allclose(table["icc"], expected["icc"], atol=1e-9)
    kept = (out / "kept_features.txt").read_text().split()
    assert kept == [f for f in FEATURES if expected.loc[f, "icc"] > 0.8]
    assert table.loc[table["kept"], "feature"].tolist() == kept
    assert "have ICC > 0.8" in capsys.readouterr().out
    # an existing output folder is not overwritten without --overwrite
    assert main(["icc", str(tmp_path / "reader1.csv"), str(tmp_path / "reader2.parquet"), "--out", str(out)]) == 2


def test_cli_bad_input(tmp_path, capsys):
    a, _ = _reader_tables()
    a.drop(columns=["case_id"]).to_csv(tmp_path / "no_id.csv", index=False)
    a.to_csv(tmp_path / "ok.csv", index=False)
    assert main(["icc", str(tmp_path / "no_id.csv"), str(tmp_path / "ok.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "no 'case_id' column" in capsys.readouterr().err
    assert main(["icc", str(tmp_path / "missing.csv"), str(tmp_path / "ok.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
