"""Benchmark of the validation statistics: fast DeLong and vectorised ICC against plain baselines.

    .venv/bin/python Testing/benchmarks/bench_stats.py [--out Testing/benchmarks/results/stats.md]

- DeLong (paired test of two scores): the Sun & Xu midrank implementation in
  CervicalAILib.research.stats.roc against DeLong's original O(m*n) kernel, for growing cohort sizes
  (the baseline only where its m*n matrix fits comfortably in memory). Both give the same Z.
- ICC(3,1) for many features of 30 cases (seed 004's reproducibility set): the vectorised
  CervicalAILib.research.stats.icc_table against pingouin.intraclass_corr called once per feature.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from CervicalAILib.research.stats import delong_paired_test, icc_table


def _best_of(fn, *args, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def _delong_bruteforce_z(y, a, b) -> float:
    def components(s):
        x, z = s[y][:, None], s[~y][None, :]
        psi = (x > z) + 0.5 * (x == z)
        return psi.mean(axis=1), psi.mean(axis=0)

    a10, a01 = components(a)
    b10, b01 = components(b)
    m, n = y.sum(), (~y).sum()
    s10 = np.cov(np.vstack([a10, b10]))
    s01 = np.cov(np.vstack([a01, b01]))
    cov = s10 / m + s01 / n
    return float((a10.mean() - b10.mean()) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]))


def bench_delong(sizes, brute_limit: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        y = rng.random(n) < 0.3
        a = np.round(rng.normal(size=n) + 1.0 * y, 2)
        b = np.round(rng.normal(size=n) + 0.8 * y, 2)
        repeat = 3 if n <= 100_000 else 1
        fast = _best_of(delong_paired_test, y, a, b, repeat=repeat)
        z_fast = delong_paired_test(y, a, b).statistic
        row = {"patients": n, "fast DeLong (s)": fast, "O(m*n) DeLong (s)": None, "speed-up": None, "Z difference": None}
        if n <= brute_limit:
            brute = _best_of(_delong_bruteforce_z, y, a, b, repeat=repeat)
            row.update({"O(m*n) DeLong (s)": brute, "speed-up": brute / fast,
                        "Z difference": abs(z_fast - _delong_bruteforce_z(y, a, b))})
        rows.append(row)
        print(row, flush=True)
    return rows


def bench_icc(n_features: int, n_pingouin: int, n_cases: int = 30) -> dict:
    import pingouin

    rng = np.random.default_rng(1)
    truth = rng.normal(size=(n_cases, n_features))
    names = [f"CET1_f{i:05d}" for i in range(n_features)]
    ids = [f"c{i}" for i in range(n_cases)]
    a = pd.DataFrame(truth + rng.normal(scale=0.3, size=truth.shape), columns=names).assign(case_id=ids)
    b = pd.DataFrame(truth + rng.normal(scale=0.3, size=truth.shape), columns=names).assign(case_id=ids)
    vectorised = _best_of(icc_table, a, b, "ICC3")
    ours = icc_table(a, b, "ICC3")["icc"]

    def loop():
        out = []
        for name in names[:n_pingouin]:
            long = pd.concat([a[["case_id", name]].assign(r="a"), b[["case_id", name]].assign(r="b")])
            table = pingouin.intraclass_corr(long, targets="case_id", raters="r", ratings=name).set_index("Type")
            out.append(table.loc["ICC(C,1)", "ICC"])
        return out

    start = time.perf_counter()
    reference = loop()
    per_feature = (time.perf_counter() - start) / n_pingouin
    max_diff = float(np.max(np.abs(ours.to_numpy()[:n_pingouin] - np.array(reference))))
    row = {"features": n_features, "cases": n_cases, "vectorised ICC (s)": vectorised,
           "pingouin per feature (s)": per_feature, "pingouin, all features (s, extrapolated)": per_feature * n_features,
           "speed-up": per_feature * n_features / vectorised, "max ICC difference vs pingouin": max_diff}
    print(row, flush=True)
    return row


def _markdown(frame: pd.DataFrame) -> str:
    def fmt(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "—"
        if isinstance(v, float):
            return f"{v:.3g}" if (abs(v) < 0.01 or abs(v) >= 1000) else f"{v:.3f}"
        return str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.shape[1]]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "stats.md"))
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    args = parser.parse_args()
    sizes = [1_000, 5_000] if args.quick else [1_000, 5_000, 20_000, 100_000, 1_000_000]
    delong = pd.DataFrame(bench_delong(sizes, brute_limit=20_000))
    icc = pd.DataFrame([bench_icc(200 if args.quick else 2_000, 20 if args.quick else 50)])
    header = (f"# Validation statistics benchmark\n\n`{' '.join(['python', *sys.argv])}` on {platform.node()} "
              f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible; shared machine, "
              f"numbers are best of 3 where affordable), {time.strftime('%Y-%m-%d')}.\n\n")
    text = (header + "## DeLong paired test of two scores (30% cases, scores rounded to 0.01: many ties)\n\n"
            + _markdown(delong) + "\n## ICC(3,1) of many features between two segmentations\n\n" + _markdown(icc))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
