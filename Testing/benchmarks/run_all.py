"""Run every benchmark in turn (`make bench`); each writes its table to Testing/benchmarks/results/.

The segmentation and deep-feature benchmarks need a held-out synthetic cohort: one is generated
first (seed 9001, never used for training) unless --cohort is given. Takes about an hour on a
2-core machine; benchmarks are not part of `make test`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", type=Path, help="held-out cohort for segmentation and deep features")
    parser.add_argument("--work", type=Path, default=REPO / "benchmark-work", help="scratch folder (default benchmark-work)")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks (e.g. radiomics readout)")
    args = parser.parse_args()
    cohort = args.cohort or args.work / "heldout-seed9001"
    runs = {
        "study_loading": [],
        "registration": [],
        "synth": [],
        "radiomics": [],
        "stats": [],
        "segmentation": ["--cohort", str(cohort)],
        "gate_variation": ["--figure", "docs/figures/gate_variation.png"],
        "deep": ["--cohort", str(cohort)],
        "readout": [],
        "extract": ["--quick"],
        "slicer": [],
        "web_review": [],
    }
    if args.only:
        runs = {name: extra for name, extra in runs.items() if name in args.only}
    if any(name in runs for name in ("segmentation", "deep")) and not cohort.exists():
        subprocess.run([sys.executable, "-m", "CervicalAILib.cli", "synth", "--cases", "30", "--seed", "9001",
                        "--centers", "4", "--jobs", "2", "--out", str(cohort)], check=True, cwd=REPO)
    failed = []
    for name, extra in runs.items():
        start = time.perf_counter()
        print(f"\n=== bench_{name}.py {' '.join(extra)}", flush=True)
        result = subprocess.run([sys.executable, str(HERE / f"bench_{name}.py"), *extra], cwd=REPO)
        print(f"=== bench_{name}.py: exit {result.returncode} after {time.perf_counter() - start:.0f} s", flush=True)
        if result.returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
