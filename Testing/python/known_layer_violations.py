"""The ratchet of test_layers.py: the violations of the import rules that the tree still has.

Each entry (rule, where, what) names the step of the issue-16 renovation that removes it:
S7 the readout contract,
S10 case folder, transforms and the registration rule,
S12 research on the pipeline (training/: after issue 14 lands),
S16 the CLI imports one command; the remaining function-level imports.
test_layers fails on a violation not listed here and on a listed one that no longer occurs:
strike an entry when it is fixed; never add one."""

KNOWN_VIOLATIONS: dict[tuple[str, str, str], str] = {
    # cycle (0)
    # layer (0)
    # research library in serving code (0)
    # function-level import of a non-optional library (0)
    # function-level engine import (0)
}
