"""The organ label table of generator 2 (labels/organs.nii.gz and labels/organs.json).

One value per voxel of the T2WI grid, 0 outside the body. The labels partition the body: a
later structure covers an earlier one where they meet, so organs never overlap. Sub-labels
(e.g. the zones of the uterus, the wall and the urine of the bladder) belong to a group
(`ORGAN_GROUPS`), and a group is what a network is usually trained on ("uterus", "bladder").
"""

from __future__ import annotations

from typing import Any

import numpy as np

# value: (name, group, what it holds)
ORGAN_TABLE: dict[int, tuple[str, str, str]] = {
    1: ("tumor", "tumor", "primary cervical tumour, necrosis included (also labels/tumor.nii.gz)"),
    2: ("cervix_stroma", "cervix", "low-T2 fibromuscular stroma of the cervix not replaced by tumour"),
    3: ("cervix_canal", "cervix", "endocervical mucosa and canal"),
    4: ("nabothian_cyst", "cervix", "retention cysts in the cervical stroma"),
    5: ("endometrium", "uterus", "endometrium (and cavity)"),
    6: ("junctional_zone", "uterus", "inner myometrium (junctional zone)"),
    7: ("myometrium", "uterus", "outer myometrium of the uterine body"),
    8: ("leiomyoma", "uterus", "fibroids in the uterine wall"),
    9: ("vagina", "vagina", "vaginal wall, fornices and lumen"),
    10: ("parametrium", "parametrium", "parametrial fat, connective tissue and venous plexus"),
    11: ("ovary", "ovary", "ovaries with their follicles"),
    12: ("bladder_wall", "bladder", "wall of the urinary bladder"),
    13: ("urine", "bladder", "urine in the bladder"),
    14: ("rectum", "rectum", "rectum and anal canal: wall and content (gas, faeces)"),
    15: ("sigmoid_colon", "bowel", "sigmoid colon: wall and content"),
    16: ("small_bowel", "bowel", "small-bowel loops: wall and content"),
    17: ("free_fluid", "free_fluid", "fluid in the pouch of Douglas"),
    18: ("lymph_node", "lymph_node", "pelvic lymph nodes (instances in labels/lymph_nodes.nii.gz)"),
    19: ("artery", "vessel", "iliac and femoral arteries, smaller arteries"),
    20: ("vein", "vessel", "iliac and femoral veins, smaller veins"),
    21: ("femoral_head", "bone", "femoral heads (cortex and marrow)"),
    22: ("femur", "bone", "femoral necks, trochanters and shafts"),
    23: ("hip_bone", "bone", "ilium, acetabulum, ischium, pubis, symphysis"),
    24: ("sacrum_coccyx", "bone", "sacrum and coccyx (sacral canal included)"),
    25: ("gluteal_muscle", "muscle", "gluteus maximus, medius and minimus"),
    26: ("obturator_internus", "muscle", "obturator internus"),
    27: ("iliopsoas", "muscle", "iliopsoas"),
    28: ("levator_ani", "muscle", "levator ani (pelvic floor)"),
    29: ("piriformis", "muscle", "piriformis"),
    30: ("other_muscle", "muscle", "rectus abdominis, obturator externus, thigh muscles"),
    31: ("subcutaneous_fat", "fat", "subcutaneous fat (skin included)"),
    32: ("pelvic_fat", "fat", "pelvic, mesorectal and intermuscular fat and fasciae"),
}

ORGAN_LABELS: dict[str, int] = {name: value for value, (name, _, _) in ORGAN_TABLE.items()}

ORGAN_GROUPS: dict[str, tuple[int, ...]] = {}
for _value, (_name, _group, _) in ORGAN_TABLE.items():
    ORGAN_GROUPS.setdefault(_group, ())
    ORGAN_GROUPS[_group] = (*ORGAN_GROUPS[_group], _value)
ORGAN_GROUPS["femoral_head"] = (ORGAN_LABELS["femoral_head"],)

# Organs only a female pelvis has (the realism benchmark leaves them out against male studies).
FEMALE_ORGANS = ("tumor", "cervix", "uterus", "vagina", "parametrium", "ovary", "free_fluid")


def organ_mask(labels: np.ndarray, name: str) -> np.ndarray:
    """Voxels of a label or of a whole group (e.g. 'bladder' = wall + urine)."""
    values = ORGAN_GROUPS.get(name) or (ORGAN_LABELS[name],)
    return np.isin(labels, values)


def label_table() -> dict[str, Any]:
    """Content of labels/organs.json."""
    return {
        "file": "labels/organs.nii.gz",
        "grid": "the T2W grid (T2W.nii.gz), voxel for voxel; 0 = outside the body",
        "other_series": "DWI/ADC, CE-T1WI and the sagittal T2WI are on their own grids; generator_truth.json gives "
                        "each grid and the true rigid patient motion from the T2W (labels/tumor_<ROLE> are on each "
                        "sequence's own grid, distortion included)",
        "labels": {str(value): {"name": name, "group": group, "description": text}
                   for value, (name, group, text) in ORGAN_TABLE.items()},
        "groups": {group: list(values) for group, values in ORGAN_GROUPS.items()},
    }
