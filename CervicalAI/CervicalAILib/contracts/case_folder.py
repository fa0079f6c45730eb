"""The vocabulary of a case folder that other contracts share: the sequence roles.

`io.case` reads and writes case folders with these names; feature names start with a role
(`contracts.feature_names`), so the roles live here, below both.
"""

from __future__ import annotations

# Sequence roles, in the order channels are stacked for networks and exports.
ROLES = ("T2W", "ADC", "DWI", "CET1")
REQUIRED_ROLE = "T2W"
