"""One patient's female pelvis as implicit shapes: body, fat, muscles, bones, organs, nodes, tumour.

Positions are first laid out in a pelvic frame (mm, LPS axes: x to the patient's left, y
posterior, z superior; origin at the centre of the cervix), scaled by the patient's pelvis
size, and then placed in the scanner by the patient's pose (small pitch/roll/yaw, table
position). That scanner frame is the T2WI's physical space; the other series see the same
anatomy through their own patient-motion transform (see `scanner`).

Structures are listed in painting order: a later structure covers an earlier one where they
meet, so the organ labels form a partition and organs never overlap. Organs are placed
relative to each other (bladder in front of the possibly enlarged cervix, rectum between
cervix and sacrum, vagina below the cervix), so a large tumour pushes its neighbours aside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from CervicalAILib.research.synth.clinical import PatientBiology
from CervicalAILib.research.synth.params import STREAM_ANATOMY, STREAM_TUMOUR, SynthParams, case_rng
from CervicalAILib.research.synth.v1.shapes import (
    Ellipsoid,
    Layer,
    NoiseField,
    Offset,
    Perturbed,
    Shape,
    Structure,
    Tube,
    Union,
    frame_from_axis,
    rotation_matrix,
)
from CervicalAILib.research.synth.v1.tumour import (
    build_core,
    build_necrosis,
    extension_blob,
    finish_tumour,
    measure_shape,
)

# Label values of labels/organs.nii.gz (0 = outside the body). The legend goes to generator.json.
ORGAN_LABELS: dict[str, int] = {
    "subcutaneous_fat": 1,
    "pelvic_fat": 2,
    "muscle": 3,
    "bone": 4,
    "bladder": 5,
    "uterus": 6,
    "cervix": 7,
    "vagina": 8,
    "rectum": 9,
    "parametrium": 10,
    "vessel": 11,
    "lymph_node": 12,
    "tumor": 13,
    "ovary": 14,
    "bowel": 15,
}

DEG = math.pi / 180.0


@dataclass
class Anatomy:
    """Everything the renderer needs about one patient, plus ground truth for the case files."""

    structures: list[Structure]  # painting order; the tumour (and its necrosis) come last
    tumour: Shape
    necrosis: Shape | None
    cellularity_field: NoiseField
    enhancement_field: NoiseField
    nodes: list[dict[str, Any]]
    cervix_center: np.ndarray  # scanner (T2WI physical) coordinates, mm
    tumour_volume_ml: float
    tumour_max_diameter_mm: float
    tissue_factors: dict[str, dict[str, float]]
    truth: dict[str, Any] = field(default_factory=dict)


class _Pose:
    """Pelvic frame -> scanner frame."""

    def __init__(self, origin: np.ndarray, rotation: np.ndarray):
        self.origin = np.asarray(origin, dtype=float)
        self.rotation = np.asarray(rotation, dtype=float)

    def point(self, p) -> np.ndarray:
        return self.origin + self.rotation @ np.asarray(p, dtype=float)

    def rot(self, r=None) -> np.ndarray:
        return self.rotation if r is None else self.rotation @ np.asarray(r, dtype=float)

    def ellipsoid(self, center, radii, rot=None, radii_neg=None, precise: bool = True) -> Ellipsoid:
        return Ellipsoid(self.point(center), self.rot(rot), tuple(float(r) for r in radii),
                         None if radii_neg is None else tuple(float(r) for r in radii_neg), precise)

    def segment(self, start, end, radius: float, radius_end: float | None = None, precise: bool = True) -> Tube:
        """Straight tube from `start` to `end` (pelvic frame)."""
        start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
        length = float(np.linalg.norm(end - start))
        taper = 0.0 if radius_end is None else (radius_end - radius) / max(length, 1e-6)
        return Tube(self.point(start), self.rot(frame_from_axis(end - start)), 0.0, length,
                    rx=(radius, taper), ry=(radius, taper), precise=precise)


def _irregular(rng: np.random.Generator, shape: Shape, spacing: float, amplitude: float) -> Perturbed:
    """`shape` with its surface displaced by a smooth random field (no organ is a perfect ellipsoid)."""
    lo, hi = shape.bounds()
    field = NoiseField.random(rng, (lo + hi) / 2, np.eye(3), (hi - lo) / 2 + amplitude * 3, spacing)
    return Perturbed(shape, field, amplitude)


def _layers(shape: Shape, tissue: str, inner: list[tuple[Shape, str]] | None = None) -> list[Layer]:
    return [Layer(shape, tissue)] + [Layer(s, t) for s, t in (inner or [])]


def _bone(name: str, shape: Shape, cortex_mm: float = 2.2) -> Structure:
    inner = shape.scaled(-cortex_mm) if hasattr(shape, "scaled") else None
    layers = [Layer(shape, "cortex")]
    if inner is not None:
        layers.append(Layer(inner, "marrow"))
    return Structure(name, "bone", layers)


def build_anatomy(bio: PatientBiology, seed: int, params: SynthParams) -> Anatomy:
    """Lay out one patient's pelvis and tumour (random streams: anatomy, tumour)."""
    rng = case_rng(seed, bio.case_index, STREAM_ANATOMY)
    trng = case_rng(seed, bio.case_index, STREAM_TUMOUR)
    lat = bio.latent
    age = bio.clinical["age"]

    # ---- patient size and pose -------------------------------------------------------------
    s = float(np.clip(rng.normal(1.0, 0.05), 0.88, 1.13))  # pelvis scale
    bmi_z = float(rng.normal())
    fat_ant = float(np.clip(28 * math.exp(0.35 * bmi_z) * rng.uniform(0.8, 1.2), 8, 75))
    fat_lat = float(np.clip(22 * math.exp(0.35 * bmi_z) * rng.uniform(0.8, 1.2), 6, 60))
    fat_post = float(np.clip(24 * math.exp(0.35 * bmi_z) * rng.uniform(0.8, 1.2), 8, 60))
    pose_rot = rotation_matrix(rng.normal(0, 4) * DEG, rng.normal(0, 2) * DEG, rng.normal(0, 2) * DEG)
    origin = np.array([rng.normal(0, 6), rng.normal(20, 10), rng.normal(-40, 25)])
    P = _Pose(origin, pose_rot)

    structures: list[Structure] = []

    # ---- body wall: subcutaneous fat outline, deep compartment (pelvic fat) -----------------
    in_rx, in_ant, in_post = 150 * s, 92 * s, 122 * s
    body_ant, body_post = in_ant + fat_ant, in_post + fat_post
    body = Tube(P.point([0, (body_post - body_ant) / 2, 0]), P.rot(), -160, 160,
                rx=(in_rx + fat_lat, 0.0), ry=((body_ant + body_post) / 2, 0.0), precise=False)
    inner = Tube(P.point([0, (in_post - in_ant) / 2, 0]), P.rot(), -165, 165,
                 rx=(in_rx, 0.0), ry=((in_ant + in_post) / 2, 0.0), precise=False)
    structures.append(Structure("body", "subcutaneous_fat", [Layer(body, "fat")], in_plane_normals=True))
    structures.append(Structure("pelvic_fat", "pelvic_fat", [Layer(inner, "fat")], paints_intensity=False,
                                in_plane_normals=True))

    # ---- muscles --------------------------------------------------------------------------------
    for side in (1, -1):
        name = "left" if side > 0 else "right"
        muscles = [
            ("gluteus_maximus", P.ellipsoid([side * 84 * s, 90 * s, -20], [50 * s, 27 * s, 66 * s],
                                            rotation_matrix(rz=side * 35 * DEG), precise=False)),
            ("gluteus_medius", P.ellipsoid([side * 118 * s, 38 * s, 48], [22 * s, 44 * s, 36 * s],
                                           rotation_matrix(rz=side * 10 * DEG), precise=False)),
            ("iliopsoas", P.segment([side * 55 * s, -18 * s, 90], [side * 74 * s, -42 * s, -18], 16 * s)),
            ("obturator_internus", P.ellipsoid([side * 64 * s, 10 * s, -8], [8 * s, 30 * s, 30 * s],
                                               rotation_matrix(rz=side * 8 * DEG), precise=False)),
            ("rectus_abdominis", P.ellipsoid([side * 30 * s, -in_ant + 8, 45], [28 * s, 6.5, 60], precise=False)),
        ]
        for mname, shape in muscles:
            if mname in ("gluteus_maximus", "obturator_internus", "gluteus_medius"):
                shape = _irregular(rng, shape, 18.0, 3.0)
            structures.append(Structure(f"{mname}_{name}", "muscle", [Layer(shape, "muscle")]))

    # ---- bones -----------------------------------------------------------------------------------
    for side in (1, -1):
        name = "left" if side > 0 else "right"
        head_c = [side * 88 * s, -8 * s, 4]
        bones = [
            ("ilium", P.ellipsoid([side * 95 * s, 8 * s, 34], [18 * s, 34 * s, 30 * s],
                                  rotation_matrix(rz=-side * 18 * DEG), precise=False)),
            ("ischium", P.segment([side * 90 * s, 20 * s, 4], [side * 78 * s, 38 * s, -52], 13 * s, 11 * s)),
            ("pubic_ramus", P.segment([side * 82 * s, -24 * s, -4], [side * 9 * s, -62 * s, -32], 10 * s, 9 * s)),
            ("femoral_head", P.ellipsoid(head_c, [23 * s] * 3)),
            ("femoral_neck", P.segment(head_c, [side * 126 * s, 2 * s, -22], 14 * s)),
            ("greater_trochanter", P.ellipsoid([side * 128 * s, 4 * s, -24], [16 * s, 22 * s, 26 * s], precise=False)),
            ("femoral_shaft", P.segment([side * 124 * s, 2 * s, -30], [side * 116 * s, -8 * s, -170], 14 * s)),
        ]
        for bname, shape in bones:
            structures.append(_bone(f"{bname}_{name}", shape))
    structures.append(_bone("pubic_symphysis", P.ellipsoid([0, -63 * s, -38], [11 * s, 9 * s, 20 * s])))
    # sacrum and coccyx: a curved tapering tube along z, concave forwards
    sacrum = Tube(P.point([0, 0, 0]), P.rot(), -52.0, 100.0, cx=(0.0, 0.0, 0.0),
                  cy=(70 * s, 0.30, 0.0018), rx=(30 * s, 0.30), ry=(11 * s, 0.05))
    sacrum_bone = _bone("sacrum_coccyx", sacrum, 2.5)
    sacrum_bone.in_plane_normals = True
    structures.append(sacrum_bone)

    # ---- cervix and tumour core ------------------------------------------------------------
    tilt = float(np.clip(rng.normal(30, 10), 5, 55)) * DEG
    lateral = float(rng.normal(0, 5)) * DEG
    axis_c = np.array([math.sin(lateral), -math.sin(tilt) * math.cos(lateral), math.cos(tilt) * math.cos(lateral)])
    rot_c = frame_from_axis(axis_c, roll=float(rng.normal(0, 10)) * DEG)  # pelvic frame
    cx0, cy0, cz0 = float(rng.normal(15, 1.5)), float(rng.normal(13, 1.2)), float(rng.normal(16, 2))
    rim0 = float(np.clip(rng.normal(7.0, 0.8), 5.0, 9.0))
    cervix_center_p = np.zeros(3)
    cervix_center = P.point(cervix_center_p)
    rot_c_a = P.rot(rot_c)  # cervix frame -> scanner

    diameter = float(lat["latent_diameter_mm"])
    r_t = diameter / 2
    # tumour centre: near the canal for small tumours, often towards one lip and the external os
    spread = min(1.0, r_t / 12.0)
    offset_local = np.array([
        trng.normal(0, 0.10 * cx0) * spread,
        trng.normal(0, 0.22 * cy0) * spread,
        trng.normal(-0.15 * cz0, 0.2 * cz0) * spread,
    ])
    tumour_center = cervix_center + rot_c_a @ offset_local
    core = build_core(trng, tumour_center, diameter)
    irregularity = float(trng.uniform(0.5, 1.5))
    margin_amplitude = float(np.clip(irregularity * r_t * 0.12, 0.2, 3.5))

    # The cervix is the normal cervix, enlarged where the tumour grows: the union of the normal
    # ellipsoid and the tumour core grown by the remaining stromal rim (thin when the stromal
    # invasion is deep; the irregular tumour margin may break through it).
    invasion = float(lat["latent_stromal_invasion"])
    rim = max(rim0 * (1.0 - invasion), 0.3)
    normal_cervix = Ellipsoid(cervix_center, rot_c_a, (cx0, cy0, cz0))
    cervix = Union([normal_cervix, Offset(core.shape, rim + 0.7 * margin_amplitude)], smooth=4.0)
    _, _, cervix_points = measure_shape(cervix, resolution=22)
    q_c = (cervix_points - cervix_center) @ rot_c_a  # cervix frame
    top_ext, bottom_ext = float(q_c[:, 2].max()), float(-q_c[:, 2].min())
    lateral_ext = float(np.abs(q_c[:, 0]).max())
    # endocervical canal: thin high-signal mucosa and secretions inside the low-signal stroma
    canal_r = (float(rng.uniform(2.5, 4.0)), float(rng.uniform(1.2, 2.2)))
    mucosa = Ellipsoid(cervix_center, rot_c_a, (canal_r[0], canal_r[1], cz0 * 0.85))
    cervix_p = (cervix_points - P.origin) @ P.rotation  # back into the pelvic frame

    # ---- uterus ----------------------------------------------------------------------------
    premenopausal = age < rng.normal(51, 3)
    if rng.random() < 0.15:
        flexion = float(rng.normal(-65, 15)) * DEG  # retroverted / retroflexed
    else:
        flexion = float(rng.normal(25, 15)) * DEG
    axis_u = rotation_matrix(rx=-flexion) @ axis_c  # tilt further forwards (towards -y)
    axis_u /= np.linalg.norm(axis_u)
    if premenopausal:
        hu, wu, du = rng.normal(37, 4), rng.normal(25, 3), rng.normal(20, 2.5)
        endo = float(np.clip(rng.normal(4.0, 1.5), 1.5, 8.0))
    else:
        hu, wu, du = rng.normal(27, 3), rng.normal(18, 2.5), rng.normal(14, 2)
        endo = float(np.clip(rng.normal(1.5, 0.5), 0.7, 3.0))
    hu, wu, du = (float(max(v, 8.0)) for v in (hu, wu, du))
    top_c = cervix_center_p + rot_c @ np.array([0, 0, top_ext])
    uterus_center_p = top_c + axis_u * (hu - 6.0)
    rot_u = frame_from_axis(axis_u, roll=float(rng.normal(0, 8)) * DEG)
    uterus_field = NoiseField.random(rng, P.point(uterus_center_p), P.rot(rot_u), [wu + 8, du + 8, hu + 8], 12.0)
    uterus = Perturbed(P.ellipsoid(uterus_center_p, [wu, du, hu], rot_u), uterus_field, 2.0)
    jz = Perturbed(P.ellipsoid(uterus_center_p, [wu * 0.45, min(endo + 5.0, du - 3), hu * 0.78], rot_u), uterus_field, 1.0)
    endometrium = Perturbed(P.ellipsoid(uterus_center_p, [wu * 0.35, endo, hu * 0.68], rot_u), uterus_field, 0.6)

    # ---- bladder (in front of the cervix/lower uterus) ------------------------------------
    fill = float(rng.uniform(0.15, 1.0))
    b_rx, b_ry, b_rz = 28 + 26 * fill, 22 + 16 * fill, 22 + 17 * fill
    b_ry_post = b_ry * 0.8
    gap_b = float(rng.uniform(4, 10))
    front_of_cervix = float(cervix_p[:, 1].min())
    b_base = float(rng.normal(-24, 4))
    b_center_p = np.array([rng.normal(0, 4), front_of_cervix - gap_b - b_ry_post, b_base + b_rz])
    max_front = -in_ant + 6
    b_ry_ant = float(max(min(b_ry, b_center_p[1] - max_front), 12.0))
    bladder = _irregular(rng, P.ellipsoid(b_center_p, [b_rx, b_ry_post, b_rz], None, [b_rx, b_ry_ant, b_rz * 0.9]),
                         14.0, 2.5)
    wall_b = 2.0 + 3.5 * (1 - fill)

    # ---- rectum (between cervix/vagina and sacrum) ----------------------------------------
    r_r = float(rng.uniform(12, 19))
    gap_r = float(rng.uniform(5, 12))
    behind_cervix = float(cervix_p[:, 1].max())
    y0 = 70 * s - 11 * s - gap_r - r_r * 0.9
    y0 = max(y0, behind_cervix + 4 + r_r * 0.9)
    rectum = Tube(P.point([rng.normal(0, 4), 0, 0]), P.rot(), -68.0, 45.0,
                  cx=(0.0, 0.05, 0.0012), cy=(y0, 0.25, 0.0018), rx=(r_r * 1.15, 0.0), ry=(r_r * 0.9, 0.0))
    rectum = _irregular(rng, rectum, 9.0, 1.8)
    rectum_lumen = rectum.scaled(-3.2)
    rectal_gas = bool(rng.random() < 0.45)

    # ---- vagina (below the cervix, running down and forwards) ------------------------------
    bottom_c = cervix_center_p - rot_c @ np.array([0, 0, bottom_ext])
    vault_top = bottom_c + axis_c * 0.45 * min(bottom_ext, 2 * cz0)
    v_dir = np.array([rng.normal(0, 0.05), -abs(rng.normal(0.42, 0.1)), -1.0])
    v_dir /= np.linalg.norm(v_dir)
    rot_v = P.rot(frame_from_axis(v_dir))
    v_rx = float(rng.uniform(14, 19))
    vault_r = float(min(lateral_ext, 2 * cx0) + 4)
    vault = Tube(P.point(vault_top), rot_v, 0.0, 24.0, rx=(vault_r, -(vault_r - v_rx) / 24),
                 ry=(vault_r * 0.8, -(vault_r * 0.8 - 5.5) / 24))
    canal = Tube(P.point(vault_top), rot_v, 20.0, 95.0, rx=(v_rx, 0.0), ry=(5.5, 0.0))
    vagina = Union([vault, canal], smooth=2.0)
    vagina_lumen = Tube(P.point(vault_top), rot_v, 8.0, 95.0, rx=(v_rx - 3.5, 0.0), ry=(1.4, 0.0))

    # ---- parametrium (each side of the cervix) and iliac vessels ---------------------------
    param_shapes = []
    for side in (1, -1):
        lateral_edge = float((cervix_p[:, 0] * side).max())
        c = np.array([side * (lateral_edge + 9), cervix_center_p[1] + 2, 0.0])
        param_shapes.append((side, _irregular(rng, P.ellipsoid(c, [16, 13, 18]), 8.0, 2.5)))
    vessel_structs = []
    vessel_lines = {}
    for side in (1, -1):
        name = "left" if side > 0 else "right"
        ext_a = ([side * 42 * s, -2 * s, 72], [side * 68 * s, -50 * s, -22])
        ext_v = ([side * 40 * s, 5 * s, 72], [side * 64 * s, -42 * s, -22])
        int_a = ([side * 40 * s, 24 * s, 72], [side * 52 * s, 36 * s, 8])
        vessel_lines[(side, "external")] = (np.array(ext_v[0]), np.array(ext_v[1]), 6.0 * s)
        vessel_lines[(side, "internal")] = (np.array(int_a[0]), np.array(int_a[1]), 4.0 * s)
        vessel_structs += [
            Structure(f"external_iliac_artery_{name}", "vessel", [Layer(P.segment(*ext_a, 4.0 * s), "artery")]),
            Structure(f"external_iliac_vein_{name}", "vessel", [Layer(P.segment(*ext_v, 6.0 * s), "vein")]),
            Structure(f"internal_iliac_artery_{name}", "vessel", [Layer(P.segment(*int_a, 3.5 * s), "artery")]),
        ]
    structures += vessel_structs
    param_texture = NoiseField.random(rng, cervix_center, P.rot(), [60, 30, 30], 3.0)
    for side, shape in param_shapes:
        structures.append(Structure(f"parametrium_{'left' if side > 0 else 'right'}", "parametrium",
                                    [Layer(shape, "parametrium", param_texture, {"t2": 0.3, "s0": 0.3, "t1c": 0.7})]))

    structures += _bowel_loops(rng, P, y0, r_r)
    structures += _ovaries(rng, P, uterus_center_p, wu, premenopausal)
    structures.append(Structure("rectum", "rectum", _layers(rectum, "rectum_wall",
                                [(rectum_lumen, "rectal_gas" if rectal_gas else "rectal_content")]), in_plane_normals=True))
    structures.append(Structure("vagina", "vagina", _layers(vagina, "vagina_wall", [(vagina_lumen, "vagina_lumen")])))
    structures.append(Structure("bladder", "bladder", _layers(bladder, "bladder_wall", [(bladder.scaled(-wall_b), "urine")])))
    structures.append(Structure("uterus", "uterus", _layers(uterus, "myometrium",
                                [(jz, "junctional_zone"), (endometrium, "endometrium")])))
    structures.append(Structure("cervix", "cervix", _layers(cervix, "cervix_stroma", [(mucosa, "cervix_mucosa")])))

    # ---- lymph nodes ---------------------------------------------------------------------------
    nodes, node_structs = _lymph_nodes(rng, bio, P, s, vessel_lines)
    structures += node_structs

    # ---- tumour extension, margin, necrosis, texture ------------------------------------------
    extension = lat["latent_extension"]
    extensions: list[Shape] = []
    ext_truth: dict[str, Any] = {"type": extension}
    cervix_axis_a = rot_c_a[:, 2]
    if extension in ("vagina_upper", "vagina_lower"):
        length = float(trng.uniform(10, 25) if extension == "vagina_upper" else trng.uniform(38, 58))
        start = P.point(vault_top) + rot_v @ np.array([trng.normal(0, 3), trng.normal(0, 3), 4.0])
        extensions.append(extension_blob(trng, start, rot_v[:, 2], length, trng.uniform(12, 22), trng.uniform(7, 11)))
        ext_truth["length_mm"] = round(length, 1)
    elif extension in ("parametrium", "sidewall"):
        sides = [1 if trng.random() < 0.5 else -1]
        if extension == "parametrium" and trng.random() < 0.3:
            sides.append(-sides[0])
        ext_truth["sides"] = ["left" if sd > 0 else "right" for sd in sides]
        for side in sides:
            lateral_edge = float((cervix_p[:, 0] * side).max())
            if extension == "sidewall":
                length = float(max(64 * s - 8 * s - lateral_edge, 8.0) + 4)
            else:
                length = float(trng.uniform(8, 20))
            start = P.point([side * (lateral_edge - 4), trng.normal(0, 4), trng.normal(0, 5)])
            direction = P.rot() @ np.array([side, trng.normal(0, 0.25), trng.normal(0, 0.2)])
            extensions.append(extension_blob(trng, start, direction, length + 4, trng.uniform(12, 20), trng.uniform(9, 15)))
            ext_truth.setdefault("length_mm", []).append(round(length, 1))
    elif extension == "bladder_rectum":
        into_bladder = trng.random() < 0.6
        ext_truth["organ"] = "bladder" if into_bladder else "rectum"
        if into_bladder:
            target_y = b_center_p[1] + b_ry_post - wall_b - 1
            start_p = np.array([trng.normal(0, 4), front_of_cervix + 4, trng.normal(5, 4)])
        else:
            target_y = y0 - r_r * 0.9 + 4.5
            start_p = np.array([trng.normal(0, 4), behind_cervix - 4, trng.normal(-5, 4)])
        length = float(abs(target_y - start_p[1]) + 6)
        direction = P.rot() @ np.array([0, -1.0 if into_bladder else 1.0, 0.0])
        extensions.append(extension_blob(trng, P.point(start_p), direction, length, trng.uniform(14, 24), trng.uniform(10, 16)))
        ext_truth["length_mm"] = round(length, 1)

    tumour, _ = finish_tumour(trng, core, extensions, margin_amplitude, rot_c_a)
    volume_mm3, max_diam, _ = measure_shape(tumour, resolution=40)
    necrosis = build_necrosis(trng, tumour, core, float(lat["latent_necrosis_fraction"]), volume_mm3 / 1000.0, rot_c_a)
    lo, hi = tumour.bounds()
    half = (hi - lo) / 2 + 3
    cell_field = NoiseField.random(trng, (lo + hi) / 2, rot_c_a, half, float(trng.uniform(3.0, 5.0)))
    enh_field = NoiseField.random(trng, (lo + hi) / 2, rot_c_a, half, float(trng.uniform(3.0, 6.0)))
    structures.append(Structure("tumor", "tumor", [Layer(tumour, "tumour")]))
    if necrosis is not None:
        structures.append(Structure("tumor_necrosis", "tumor", [Layer(necrosis, "tumour_necrosis")]))

    # per-patient biological variation of tissue signals (never of the tumour: that is latent)
    tissue_factors = {
        tissue: {
            "t2": float(math.exp(rng.normal(0, 0.06))),
            "s0": float(math.exp(rng.normal(0, 0.06))),
            "adc": float(math.exp(rng.normal(0, 0.04))),
            "t1c": float(math.exp(rng.normal(0, 0.07))),
        }
        for tissue in _VARYING_TISSUES
    }
    truth = {
        "pelvis_scale": round(s, 4),
        "subcutaneous_fat_mm": {"anterior": round(fat_ant, 1), "lateral": round(fat_lat, 1), "posterior": round(fat_post, 1)},
        "pose": {"origin_mm": np.round(P.origin, 3).tolist(), "rotation": np.round(P.rotation, 6).tolist()},
        "cervix": {
            "center_mm": np.round(cervix_center, 3).tolist(),
            "axis": np.round(rot_c_a[:, 2], 5).tolist(),
            "normal_radii_mm": [round(cx0, 2), round(cy0, 2), round(cz0, 2)],
            "extent_along_axis_mm": [round(-bottom_ext, 2), round(top_ext, 2)],
            "stromal_rim_mm": round(rim0, 2),
            "remaining_rim_mm": round(rim, 2),
        },
        "uterus": {"premenopausal": bool(premenopausal), "flexion_deg": round(flexion / DEG, 1),
                   "half_axes_mm": [round(wu, 1), round(du, 1), round(hu, 1)]},
        "bladder_filling": round(fill, 3),
        "rectal_gas": rectal_gas,
        "tumour": {
            "center_mm": np.round(tumour_center, 3).tolist(),
            "latent_diameter_mm": round(diameter, 2),
            "volume_ml": round(volume_mm3 / 1000.0, 3),
            "max_diameter_mm": round(max_diam, 2),
            "irregularity": round(irregularity, 3),
            "extension": ext_truth,
            "necrosis": necrosis is not None,
            "cervix_axis": np.round(cervix_axis_a, 5).tolist(),
        },
    }
    return Anatomy(
        structures=structures,
        tumour=tumour,
        necrosis=necrosis,
        cellularity_field=cell_field,
        enhancement_field=enh_field,
        nodes=nodes,
        cervix_center=cervix_center,
        tumour_volume_ml=volume_mm3 / 1000.0,
        tumour_max_diameter_mm=max_diam,
        tissue_factors=tissue_factors,
        truth=truth,
    )


def _bowel_loops(rng: np.random.Generator, P: _Pose, rectum_y: float, rectum_r: float) -> list[Structure]:
    """Sigmoid colon (from the top of the rectum) and small-bowel loops in the upper pelvis."""
    loops = []
    # sigmoid: leaves the rectum top and runs up, left and forwards
    start = np.array([0.0, rectum_y + 0.25 * 45 + 0.0018 * 45**2, 40.0])
    end = start + np.array([rng.uniform(25, 45), rng.uniform(-35, -15), rng.uniform(25, 40)])
    specs = [(start, end, float(rng.uniform(11, 16)))]
    for _ in range(int(rng.integers(1, 4))):
        a = np.array([rng.uniform(-60, 60), rng.uniform(-35, 25), rng.uniform(35, 75)])
        b = a + rng.normal(0, 1, 3) * np.array([30, 20, 12])
        specs.append((a, b, float(rng.uniform(9, 14))))
    for n, (a, b, radius) in enumerate(specs):
        tube = _irregular(rng, P.segment(a, b, radius), 8.0, 1.5)
        content = ("rectal_gas", "bowel_fluid", "rectal_content")[int(rng.integers(0, 3))]
        loops.append(Structure(f"bowel_{n + 1}", "bowel", _layers(tube, "bowel_wall", [(tube.scaled(-2.5), content)])))
    return loops


def _ovaries(rng: np.random.Generator, P: _Pose, uterus_center_p: np.ndarray, half_width: float,
             premenopausal: bool) -> list[Structure]:
    """Ovaries beside the uterus; before menopause with fluid-filled follicles."""
    out = []
    for side in (1, -1):
        center = np.array([side * float(np.clip(abs(uterus_center_p[0]) + half_width + rng.uniform(8, 18), 35, 62)),
                           rng.uniform(5, 25), float(np.clip(uterus_center_p[2] + rng.normal(0, 8), 15, 50))])
        radii = np.array([15, 9, 11]) if premenopausal else np.array([9, 6, 7])
        radii = radii * rng.uniform(0.8, 1.2, 3)
        rot = rotation_matrix(rz=float(rng.uniform(0, np.pi)))
        ovary = P.ellipsoid(center, radii, rot)
        layers = [Layer(ovary, "ovary")]
        if premenopausal:
            follicles = []
            for _ in range(int(rng.integers(3, 8))):
                r = float(rng.uniform(2.0, 6.5))
                offset = rng.uniform(-1, 1, 3) * np.maximum(radii - r - 1, 0.5)
                follicles.append(P.ellipsoid(center + rot @ offset, [r, r * 0.9, r]))
            layers.append(Layer(Union(follicles), "follicle"))
        out.append(Structure(f"ovary_{'left' if side > 0 else 'right'}", "ovary", layers))
    return out


_VARYING_TISSUES = (
    "fat", "muscle", "marrow", "urine", "bladder_wall", "myometrium", "junctional_zone", "endometrium",
    "cervix_stroma", "cervix_mucosa", "vagina_wall", "vagina_lumen", "rectum_wall", "rectal_content",
    "parametrium", "vein", "node", "ovary", "bowel_wall",
)


def _lymph_nodes(rng: np.random.Generator, bio: PatientBiology, P: _Pose, s: float,
                 vessel_lines: dict) -> tuple[list[dict[str, Any]], list[Structure]]:
    """Pelvic nodes along the iliac vessels and in the obturator fossae; the largest is the clinical one."""
    clin = bio.clinical
    largest_short = float(clin["ln_short_axis_mm"])
    largest_long = float(clin["ln_long_axis_mm"])
    lnm = bool(clin["lnm"])
    per_side = {1: int(rng.integers(2, 5)), -1: int(rng.integers(2, 5))}
    largest_side = 1 if rng.random() < 0.5 else -1
    station_names = ("external_iliac", "obturator", "internal_iliac")
    largest_station = station_names[int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
    specs = []
    for side in (1, -1):
        for n in range(per_side[side]):
            if side == largest_side and n == 0:
                specs.append((side, largest_station, largest_short, largest_long, True))
            else:
                short = float(rng.uniform(3.0, max(3.2, min(largest_short, 7.5))))
                ratio = float(rng.uniform(0.5, 0.95))
                specs.append((side, station_names[int(rng.integers(0, 3))], round(short, 1), round(short / ratio, 1), False))
    placed: list[tuple[np.ndarray, float]] = []
    nodes, structs = [], []
    for side, station, short, long_axis, is_largest in specs:
        radius = long_axis / 2
        center = None
        for _ in range(12):
            candidate = _node_position(rng, side, station, short, s, vessel_lines)
            if all(np.linalg.norm(candidate - c) > radius + r + 2.0 for c, r in placed):
                center = candidate
                break
        if center is None:
            continue
        placed.append((center, radius))
        metastatic = is_largest and lnm or (lnm and not is_largest and rng.random() < 0.2)
        necrotic = bool(is_largest and clin["ln_necrosis"])
        angle = float(rng.uniform(0, np.pi))
        cc = long_axis * float(rng.uniform(0.9, 1.4))
        rot = rotation_matrix(rz=angle) @ rotation_matrix(rx=float(rng.normal(0, 10)) * DEG)
        shape = P.ellipsoid(center, [long_axis / 2, short / 2, cc / 2], rot)
        node_id = len(nodes) + 1
        layers = [Layer(shape, "node")]
        if necrotic:
            layers.append(Layer(shape.scaled(-short * 0.28), "node_necrosis"))
        structs.append(Structure(f"lymph_node_{node_id}", "lymph_node", layers, extra={"node_id": node_id}))
        nodes.append({
            "id": node_id,
            "side": "left" if side > 0 else "right",
            "station": station,
            "short_axis_mm": short,
            "long_axis_mm": long_axis,
            "craniocaudal_mm": round(cc, 1),
            "center_mm": np.round(P.point(center), 2).tolist(),
            "largest": bool(is_largest),
            "metastatic": bool(metastatic),
            "necrotic": necrotic,
        })
    return nodes, structs


def _node_position(rng, side: int, station: str, short: float, s: float, vessel_lines: dict) -> np.ndarray:
    if station == "obturator":
        return np.array([side * (64 * s - 8 * s - 2 - short / 2), rng.uniform(-12, 14) * s, rng.uniform(-12, 16)])
    start, end, vessel_r = vessel_lines[(side, "external" if station == "external_iliac" else "internal")]
    t = float(rng.uniform(0.35, 0.85))
    point = start + t * (end - start)
    offset = vessel_r + short / 2 + 1.5
    return point + np.array([-side * offset * 0.8, offset * 0.6, rng.normal(0, 3)])
