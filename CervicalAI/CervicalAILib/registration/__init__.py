"""Co-registration of DWI, ADC and CE-T1WI onto the T2WI grid (rigid, Mattes mutual information).

`register_rigid` registers one pair; `register_to_t2` a whole set of sequences;
`register_study_to_case` writes the result as a case folder with the transforms stored.
"""

from CervicalAILib.registration.onto_t2 import register_study_to_case, register_to_t2
from CervicalAILib.registration.rigid import (
    DEFAULT_SEED,
    RegistrationResult,
    register_rigid,
    rotation_angle_deg,
    write_transform,
)

__all__ = [
    "DEFAULT_SEED",
    "RegistrationResult",
    "register_rigid",
    "register_study_to_case",
    "register_to_t2",
    "rotation_angle_deg",
    "write_transform",
]
