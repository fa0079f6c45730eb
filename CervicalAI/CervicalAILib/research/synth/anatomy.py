"""One patient's female pelvis as implicit shapes (generator 2).

Positions are laid out in a pelvic frame (mm, LPS axes: x to the patient's left, y posterior,
z superior; origin at the centre of the cervix), scaled by the patient's pelvis size, and then
placed in the scanner by the patient's pose (small pitch/roll/yaw, table position). That scanner
frame is the T2WI's physical space; the other series see the same anatomy through their own
patient-motion transform (see `scanner`).

What is modelled (each with variation between patients): body outline with buttocks and thighs,
skin, subcutaneous fat with fibrous septa and small vessels; muscles in their fat sheaths
(gluteus maximus/medius/minimus, iliopsoas, obturator internus and externus, piriformis,
levator ani, rectus abdominis, thigh muscles); bones with cortex and marrow (iliac wings,
acetabula with the hip joint space, femoral heads, necks, trochanters and shafts, ischium,
pubic rami and symphysis, sacrum with its canal, coccyx); iliac and femoral vessels (flow voids)
and many small vessels; bladder (wall, urine, filling); rectum (muscularis, submucosa, mucosa;
gas, faeces or collapsed), anal canal, mesorectal fat and fascia; sigmoid colon and small-bowel
loops; uterus (zonal anatomy, ante/retroverted, size by age; leiomyomas); cervix (low-T2
stroma, canal, nabothian cysts); vagina; parametria with their venous plexus; ovaries with
follicles; fluid in the pouch of Douglas; pelvic lymph nodes; and the tumour (`tumour`).

Structures are listed in painting order: a later structure covers an earlier one where they
meet, so the organ labels (`labels.ORGAN_TABLE`) form a partition and organs never overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from CervicalAILib.research.synth.clinical import PatientBiology
from CervicalAILib.research.synth.params import STREAM_ANATOMY, STREAM_TUMOUR, SynthParams, case_rng
from CervicalAILib.research.synth.shapes import (
    Cached,
    Capsule,
    Coarse,
    Ellipsoid,
    Intersection,
    Layer,
    NoiseField,
    Offset,
    Perturbed,
    Shape,
    Shell,
    Structure,
    Tube,
    Union,
    frame_from_axis,
    grown,
    rotation_matrix,
)
from CervicalAILib.research.synth.tissues import TISSUES
from CervicalAILib.research.synth.tumour import (
    build_core,
    build_necrosis,
    extension_blob,
    finish_tumour,
    measure_shape,
)

DEG = math.pi / 180.0
FAT_LABELS = frozenset({"subcutaneous_fat", "pelvic_fat"})
SOFT_LABELS = frozenset({"subcutaneous_fat", "pelvic_fat", "parametrium"})


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
    cervix_axis: np.ndarray  # unit vector along the cervical canal (scanner frame, pointing up)
    body_center: np.ndarray  # scanner frame, at the level of the cervix
    body_front_y: float  # scanner y of the anterior skin (coil array)
    body_back_y: float  # scanner y of the posterior skin
    gas: Shape | None  # bowel/rectal gas (EPI susceptibility distortion)
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
        """Straight tube from `start` to `end` (pelvic frame), flat ends."""
        start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
        length = float(np.linalg.norm(end - start))
        taper = 0.0 if radius_end is None else (radius_end - radius) / max(length, 1e-6)
        return Tube(self.point(start), self.rot(frame_from_axis(end - start)), 0.0, length,
                    rx=(radius, taper), ry=(radius, taper), precise=precise)

    def capsule(self, start, end, radius: float, radius_end: float | None = None) -> Capsule:
        """Segment with round ends (pelvic frame)."""
        return Capsule(self.point(start), self.point(end), float(radius), None if radius_end is None else float(radius_end))


def _irregular(rng: np.random.Generator, shape: Shape, spacing: float, amplitude: float) -> Perturbed:
    """`shape` with its surface displaced by a smooth random field (no organ is a perfect ellipsoid)."""
    lo, hi = shape.bounds()
    noise = NoiseField.random(rng, (lo + hi) / 2, np.eye(3), (hi - lo) / 2 + amplitude * 3, spacing)
    return Perturbed(shape, noise, amplitude)


def _bone(name: str, label: str, shape: Shape, cortex_mm: float = 2.0) -> Structure:
    return Structure(name, label, [Layer(shape, "cortex"), Layer(grown(shape, -cortex_mm), "marrow", "marrow")])


def _muscle(name: str, label: str, shape: Shape, sheath_mm: float = 1.2) -> Structure:
    """A muscle in its fat sheath: where two muscles meet, a thin fat plane separates them."""
    return Structure(name, label, [Layer(shape, "muscle", "muscle", sheath=("fat", sheath_mm, "fat", "pelvic_fat"))])


def _random_path(rng: np.random.Generator, start: np.ndarray, direction: np.ndarray, steps: int, step_mm: float,
                 turn: float, bounds_lo: np.ndarray, bounds_hi: np.ndarray) -> list[np.ndarray]:
    """A smooth random walk (bowel loops, small vessels), kept inside a box (pelvic frame)."""
    points = [np.asarray(start, dtype=float)]
    d = np.asarray(direction, dtype=float)
    d /= np.linalg.norm(d)
    for _ in range(steps):
        d = d + rng.normal(0, turn, 3)
        nxt = points[-1] + step_mm * d / np.linalg.norm(d)
        outside = (nxt < bounds_lo) | (nxt > bounds_hi)
        if outside.any():
            d[outside] *= -1
            nxt = np.clip(nxt, bounds_lo, bounds_hi)
        d /= np.linalg.norm(d)
        points.append(nxt)
    return points


def build_anatomy(bio: PatientBiology, seed: int, params: SynthParams) -> Anatomy:
    """Lay out one patient's pelvis and tumour (random streams: anatomy, tumour)."""
    rng = case_rng(seed, bio.case_index, STREAM_ANATOMY)
    trng = case_rng(seed, bio.case_index, STREAM_TUMOUR)
    lat = bio.latent
    age = bio.clinical["age"]

    # ---- patient size and pose -------------------------------------------------------------
    s = float(np.clip(rng.normal(1.0, 0.05), 0.88, 1.13))  # pelvis scale
    bmi_z = float(rng.normal())
    fat_ant = float(np.clip(22 * math.exp(0.4 * bmi_z) * rng.uniform(0.8, 1.2), 6, 80))
    fat_lat = float(np.clip(20 * math.exp(0.4 * bmi_z) * rng.uniform(0.8, 1.2), 5, 70))
    fat_post = float(np.clip(20 * math.exp(0.4 * bmi_z) * rng.uniform(0.8, 1.2), 6, 70))
    pose_rot = rotation_matrix(rng.normal(0, 4) * DEG, rng.normal(0, 2) * DEG, rng.normal(0, 2) * DEG)
    origin = np.array([rng.normal(0, 6), rng.normal(20, 10), rng.normal(-40, 25)])
    P = _Pose(origin, pose_rot)
    premenopausal = age < rng.normal(51, 3)

    structures: list[Structure] = []

    # ---- body outline, skin, subcutaneous and pelvic fat ---------------------------------
    core_parts = [
        P.ellipsoid([0, 12 * s, 30], [142 * s, 108 * s, 260], radii_neg=[142 * s, 88 * s, 260], precise=False),
        P.ellipsoid([62 * s, 88 * s, -40], [70 * s, 48 * s, 80], precise=False),
        P.ellipsoid([-62 * s, 88 * s, -40], [70 * s, 48 * s, 80], precise=False),
        Tube(P.point([95 * s, 10 * s, -60]), P.rot(rotation_matrix(ry=-4 * DEG)), -220, 0, rx=(76 * s, 0.0),
             ry=(74 * s, 0.0), precise=False),
        Tube(P.point([-95 * s, 10 * s, -60]), P.rot(rotation_matrix(ry=4 * DEG)), -220, 0, rx=(76 * s, 0.0),
             ry=(74 * s, 0.0), precise=False),
    ]
    core = Union(core_parts, smooth=18.0)
    fat_mean = (fat_ant + fat_lat + fat_post) / 3
    outer_parts = [
        Offset(core, fat_mean),
        P.ellipsoid([0, -60 * s, 25], [125 * s, 30 * s + fat_ant, 95], precise=False),  # anterior abdominal fat
    ]
    body = Cached(Coarse(_irregular(rng, Union(outer_parts, smooth=25.0), 40.0, 0.25 * fat_mean), 4))
    inner = Cached(Coarse(_irregular(rng, core, 30.0, 4.0), 4))
    # Inside the deep fascia, the sides of the pelvis and the thighs are muscle unless a fat
    # compartment is carved out of them (the pelvic and abdominal cavity, the ischioanal fossae,
    # the femoral triangles); the midline (linea alba, behind the sacrum, the perineum) is fat.
    # Named muscles (in their fat sheaths) are painted over that, so thin fat planes separate them.
    flanks = Union([P.ellipsoid([side * 112 * s, 18 * s, -20], [88 * s, 125 * s, 190], precise=False) for side in (1, -1)])
    muscle_mass = Coarse(Intersection(_irregular(rng, flanks, 30.0, 6.0), inner), 4)
    structures.append(Structure("body", "subcutaneous_fat", [
        Layer(body, "skin"),
        Layer(Offset(body, -1.6), "fat", "fat"),
        Layer(inner, "fat", "fat", label="pelvic_fat"),
        Layer(Offset(muscle_mass, 0.9), "fascia", label="other_muscle"),
        Layer(muscle_mass, "muscle", "muscle", label="other_muscle"),
    ], in_plane_normals=True))
    structures += _small_vessels(rng, P, s, count=int(rng.integers(40, 80)), region="subcutaneous")
    cavity = Coarse(_irregular(rng, Union([
        P.ellipsoid([0, 6 * s, -8], [47 * s, 60 * s, 58], precise=False),
        P.ellipsoid([0, -6 * s, 80], [100 * s, 78 * s, 62], precise=False),
    ], smooth=25.0), 14.0, 3.0), 3)
    fossae = []
    for side in (1, -1):
        fossae.append(P.ellipsoid([side * 34 * s, 40 * s, -52], [20 * s, 34 * s, 28], rz_deg(side, 20), precise=False))
        fossae.append(P.ellipsoid([side * 70 * s, -58 * s, -40], [19 * s, 15 * s, 34], rz_deg(side, -20), precise=False))
    compartments = Coarse(_irregular(rng, Union([cavity, *fossae], smooth=6.0), 10.0, 2.0), 3)
    structures.append(Structure("fat_compartments", "pelvic_fat", [Layer(compartments, "fat", "fat")]))

    # ---- muscles -----------------------------------------------------------------------------
    structures += _muscles(rng, P, s)
    structures += _small_vessels(rng, P, s, count=int(rng.integers(25, 50)), region="pelvic")

    # ---- bones -------------------------------------------------------------------------------
    bones, head_centers = _bones(rng, P, s)
    structures += bones

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
    spread = min(1.0, r_t / 12.0)
    offset_local = np.array([
        trng.normal(0, 0.10 * cx0) * spread,
        trng.normal(0, 0.22 * cy0) * spread,
        trng.normal(-0.15 * cz0, 0.2 * cz0) * spread,
    ])
    tumour_center = cervix_center + rot_c_a @ offset_local
    core_t = build_core(trng, tumour_center, diameter)
    irregularity = float(trng.uniform(0.5, 1.5))
    margin_amplitude = float(np.clip(irregularity * r_t * 0.12, 0.2, 3.5))

    invasion = float(lat["latent_stromal_invasion"])
    rim = max(rim0 * (1.0 - invasion), 0.3)
    normal_cervix = Ellipsoid(cervix_center, rot_c_a, (cx0, cy0, cz0))
    cervix = Union([normal_cervix, Offset(core_t.shape, rim + 0.7 * margin_amplitude)], smooth=4.0)
    _, _, cervix_points = measure_shape(cervix, resolution=22)
    q_c = (cervix_points - cervix_center) @ rot_c_a  # cervix frame
    top_ext, bottom_ext = float(q_c[:, 2].max()), float(-q_c[:, 2].min())
    lateral_ext = float(np.abs(q_c[:, 0]).max())
    canal_r = (float(rng.uniform(2.5, 4.0)), float(rng.uniform(1.2, 2.2)))
    mucosa = Ellipsoid(cervix_center, rot_c_a, (canal_r[0], canal_r[1], cz0 * 0.85))  # thin: not rough (below)
    cervix_p = (cervix_points - P.origin) @ P.rotation  # back into the pelvic frame

    # ---- uterus ----------------------------------------------------------------------------
    if rng.random() < 0.15:
        flexion = float(rng.normal(-65, 15)) * DEG  # retroverted / retroflexed
    else:
        flexion = float(rng.normal(25, 15)) * DEG
    axis_u = rotation_matrix(rx=-flexion) @ axis_c
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
    fibroids = []
    if rng.random() < (0.3 if premenopausal else 0.2):
        for _ in range(int(rng.integers(1, 4))):
            r = float(rng.uniform(5, 22))
            where = rng.normal(0, 1, 3) * np.array([wu, du, hu]) * 0.45
            fibroids.append(_irregular(rng, P.ellipsoid(uterus_center_p + rot_u @ where, [r, r * rng.uniform(0.8, 1.0), r],
                                                        rotation_matrix(rz=rng.uniform(0, np.pi))), 6.0, 0.8))

    # ---- bladder (in front of the cervix/lower uterus) ------------------------------------
    in_ant = 88 * s
    fill = float(rng.uniform(0.15, 1.0))
    b_rx, b_ry, b_rz = 28 + 26 * fill, 22 + 16 * fill, 22 + 17 * fill
    b_ry_post = b_ry * 0.8
    gap_b = float(rng.uniform(4, 10))
    front_of_cervix = float(cervix_p[:, 1].min())
    b_base = float(rng.normal(-24, 4))
    b_center_p = np.array([rng.normal(0, 4), front_of_cervix - gap_b - b_ry_post, b_base + b_rz])
    max_front = -in_ant + 22
    b_ry_ant = float(max(min(b_ry, b_center_p[1] - max_front), 12.0))
    bladder = _irregular(rng, P.ellipsoid(b_center_p, [b_rx, b_ry_post, b_rz], None, [b_rx, b_ry_ant, b_rz * 0.9]),
                         14.0, 2.5)
    wall_b = 2.0 + 3.5 * (1 - fill)

    # ---- rectum, anal canal, mesorectum ---------------------------------------------------
    r_r = float(rng.uniform(12, 19))
    gap_r = float(rng.uniform(5, 12))
    behind_cervix = float(cervix_p[:, 1].max())
    y0 = 70 * s - 11 * s - gap_r - r_r * 0.9
    y0 = max(y0, behind_cervix + 4 + r_r * 0.9)
    rectum_core = Tube(P.point([rng.normal(0, 4), 0, 0]), P.rot(), -68.0, 45.0,
                       cx=(0.0, 0.05, 0.0012), cy=(y0, 0.25, 0.0018), rx=(r_r * 1.15, 0.0), ry=(r_r * 0.9, 0.0))
    rectum = _irregular(rng, rectum_core, 9.0, 1.8)
    content = str(rng.choice(["gas", "faeces", "collapsed"], p=[0.25, 0.4, 0.35]))
    rectum_layers = [
        Layer(rectum, "rectum_muscularis", "wall"),
        Layer(rectum.scaled(-1.8), "rectum_submucosa", "wall"),
        Layer(rectum.scaled(-2.8), "rectum_mucosa", "wall"),
    ]
    if content == "gas":
        rectum_layers.append(Layer(rectum.scaled(-4.0), "gas"))
    elif content == "faeces":
        rectum_layers.append(Layer(rectum.scaled(-3.8), "faeces", "faeces"))
    else:
        rectum_layers.append(Layer(Tube(rectum_core.center, rectum_core.rotation, -66, 43, cx=rectum_core.cx,
                                        cy=rectum_core.cy, rx=(r_r * 0.7, 0.0), ry=(1.2, 0.0)), "vagina_lumen"))
    anal_top = np.array([0.0, y0 - 68 * 0.25 + 0.0018 * 68**2, -66.0])
    anal = P.segment(anal_top, anal_top + np.array([0, -14, -40]), 11.0, 9.0)
    meso = _irregular(rng, P.ellipsoid([0, y0 + 2, -20], [r_r * 1.15 + 16, r_r * 0.9 + 14, 52]), 12.0, 3.0)
    structures.append(Structure("mesorectum", "pelvic_fat", [
        Layer(Shell(meso, 1.0), "fascia", only_over=FAT_LABELS),
        Layer(grown(meso, -0.5), "fat", "fat"),
    ]))

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

    # ---- levator ani: a U-shaped funnel from the pelvic sidewalls down to the anorectal
    # junction, open in front (urogenital hiatus); coccygeus behind it -----------------------
    funnel = Tube(P.point([0, y0 - 5, -60]), P.rot(), 0.0, 48.0, cx=(0.0, 0.0, 0.0), cy=(0.0, -0.35, 0.0),
                  rx=(16.0, 0.75), ry=(14.0, 0.5))
    posterior = P.ellipsoid([0, y0 + 40, -40], [130, 40 + y0 + 40 - (-12), 70])
    structures.append(Structure("levator_ani", "levator_ani", [
        Layer(Intersection(Shell(funnel, float(rng.uniform(4.0, 6.5))), posterior), "muscle", "muscle",
              only_over=FAT_LABELS)]))
    for side in (1, -1):
        structures.append(Structure(f"coccygeus_{'left' if side > 0 else 'right'}", "levator_ani", [
            Layer(P.capsule([side * 50 * s, 42 * s, -4], [side * 12 * s, 64 * s, -38], 6.0, 4.0), "muscle", "muscle",
                  only_over=FAT_LABELS)]))

    # ---- parametrium (each side of the cervix) and iliac/femoral vessels -----------------
    param_shapes = []
    for side in (1, -1):
        lateral_edge = float((cervix_p[:, 0] * side).max())
        c = np.array([side * (lateral_edge + 10), cervix_center_p[1] + 2, 0.0])
        param_shapes.append((side, _irregular(rng, P.ellipsoid(c, [17, 14, 19]), 8.0, 2.5)))
    vessel_lines: dict[tuple[int, str], tuple[np.ndarray, np.ndarray, float]] = {}
    for side in (1, -1):
        name = "left" if side > 0 else "right"
        ext_a = ([side * 42 * s, -2 * s, 72], [side * 68 * s, -50 * s, -22])
        ext_v = ([side * 40 * s, 7 * s, 72], [side * 64 * s, -40 * s, -22])
        fem_a = (ext_a[1], [side * 80 * s, -62 * s, -130])
        fem_v = (ext_v[1], [side * 74 * s, -54 * s, -130])
        int_a = ([side * 40 * s, 24 * s, 72], [side * 52 * s, 36 * s, 8])
        int_v = ([side * 36 * s, 32 * s, 72], [side * 48 * s, 44 * s, 5])
        vessel_lines[(side, "external")] = (np.array(ext_v[0]), np.array(ext_v[1]), 6.0 * s)
        vessel_lines[(side, "internal")] = (np.array(int_a[0]), np.array(int_a[1]), 4.0 * s)
        vein_flow = float(rng.uniform(0.1, 0.9))
        structures += [
            Structure(f"external_iliac_vein_{name}", "vein", [Layer(P.capsule(*ext_v, 6.0 * s), "vein", flow=vein_flow)]),
            Structure(f"femoral_vein_{name}", "vein", [Layer(P.capsule(*fem_v, 6.0 * s, 5.5 * s), "vein", flow=vein_flow)]),
            Structure(f"internal_iliac_vein_{name}", "vein", [Layer(P.capsule(*int_v, 4.5 * s), "vein", flow=vein_flow)]),
            Structure(f"external_iliac_artery_{name}", "artery", [Layer(P.capsule(*ext_a, 4.0 * s), "artery")]),
            Structure(f"femoral_artery_{name}", "artery", [Layer(P.capsule(*fem_a, 4.0 * s, 3.5 * s), "artery")]),
            Structure(f"internal_iliac_artery_{name}", "artery", [Layer(P.capsule(*int_a, 3.5 * s), "artery")]),
            Structure(f"uterine_artery_{name}", "artery", [Layer(P.capsule(int_a[1], [side * 24, 4, 2], 1.6), "artery", rough=False,
                                                                 only_over=SOFT_LABELS)]),
        ]
    for side, shape in param_shapes:
        structures.append(Structure(f"parametrium_{'left' if side > 0 else 'right'}", "parametrium",
                                    [Layer(shape, "parametrium", "venous", only_over=SOFT_LABELS | {"artery", "vein"})]))

    structures += _bowel_loops(rng, P, y0, r_r, uterus_center_p, hu)
    structures += _ovaries(rng, P, uterus_center_p, wu, premenopausal)
    structures.append(Structure("rectum", "rectum", rectum_layers, in_plane_normals=True))
    structures.append(Structure("anal_canal", "rectum", [Layer(anal, "muscle", "muscle"),
                                                         Layer(anal.scaled(-4.5), "rectum_mucosa", "wall")]))
    if rng.random() < (0.55 if premenopausal else 0.2):
        pouch = np.array([rng.normal(0, 5), behind_cervix + 3, rng.normal(14, 6)])
        fluid = _irregular(rng, P.ellipsoid(pouch, [rng.uniform(6, 18), rng.uniform(3, 7), rng.uniform(5, 12)]), 6.0, 1.5)
        structures.append(Structure("douglas_fluid", "free_fluid", [Layer(fluid, "free_fluid", "fluid",
                                                                          only_over=SOFT_LABELS | {"rectum"})]))
    structures.append(Structure("vagina", "vagina", [Layer(vagina, "vagina_wall", "wall"),
                                                     Layer(vagina_lumen, "vagina_lumen", "fluid")]))
    structures.append(Structure("bladder", "bladder_wall", [Layer(bladder, "bladder_wall", "wall"),
                                                            Layer(bladder.scaled(-wall_b), "urine", "fluid", label="urine")]))
    uterus_layers = [Layer(uterus, "myometrium", "organ", label="myometrium"),
                     Layer(jz, "junctional_zone", "organ", label="junctional_zone"),
                     Layer(endometrium, "endometrium", "organ", label="endometrium")]
    uterus_layers += [Layer(f, "leiomyoma", "organ", label="leiomyoma") for f in fibroids]
    structures.append(Structure("uterus", "myometrium", uterus_layers))
    cervix_layers = [Layer(cervix, "cervix_stroma", "organ", label="cervix_stroma"),
                     Layer(mucosa, "cervix_mucosa", "organ", label="cervix_canal", rough=False)]
    if rng.random() < 0.45:
        for _ in range(int(rng.integers(1, 5))):
            r = float(rng.uniform(1.5, 5.5))
            where = np.array([rng.uniform(-0.6, 0.6) * cx0, rng.uniform(-0.6, 0.6) * cy0, rng.uniform(-0.7, 0.5) * cz0])
            cervix_layers.append(Layer(Ellipsoid(cervix_center + rot_c_a @ where, rot_c_a, (r, r, r * 1.2)),
                                       "nabothian_cyst", "fluid", label="nabothian_cyst", rough=False))
    structures.append(Structure("cervix", "cervix_stroma", cervix_layers))

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
                length = float(max(40 * s - lateral_edge, 8.0) + 4)
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
    # large tumours often grow up into the lower uterine segment (no change of FIGO stage)
    uterine_growth = diameter > 35 and trng.random() < 0.35
    if uterine_growth:
        length = float(trng.uniform(10, 28))
        start = cervix_center + rot_c_a @ np.array([0.0, 0.0, top_ext - 6.0])
        extensions.append(extension_blob(trng, start, P.rot() @ axis_u, length, trng.uniform(14, 24), trng.uniform(10, 16)))
        ext_truth["uterine_body_mm"] = round(length, 1)

    fine_margin = float(trng.uniform(0.4, 1.2)) * min(1.0, r_t / 8.0)
    tumour, _ = finish_tumour(trng, core_t, extensions, margin_amplitude, rot_c_a, fine_margin)
    volume_mm3, max_diam, _ = measure_shape(tumour, resolution=40)
    necrosis = build_necrosis(trng, tumour, core_t, float(lat["latent_necrosis_fraction"]), volume_mm3 / 1000.0, rot_c_a)
    lo, hi = tumour.bounds()
    half = (hi - lo) / 2 + 3
    cell_field = NoiseField.random(trng, (lo + hi) / 2, rot_c_a, half, float(trng.uniform(3.0, 5.0)))
    enh_field = NoiseField.random(trng, (lo + hi) / 2, rot_c_a, half, float(trng.uniform(3.0, 6.0)))
    edge = float(trng.uniform(0.5, 1.6))  # blurred, infiltrative tumour-stroma interface
    structures.append(Structure("tumor", "tumor", [Layer(tumour, "tumour", "organ", edge_mm=edge, rough=False)]))
    if necrosis is not None:
        structures.append(Structure("tumor_necrosis", "tumor", [Layer(necrosis, "tumour_necrosis", "fluid", edge_mm=1.0,
                                                                      rough=False)]))

    # per-patient biological variation of tissue properties (never of the tumour: that is latent)
    tissue_factors = {
        tissue: {
            "t2": float(math.exp(rng.normal(0, 0.07))),
            "t1_15": float(math.exp(rng.normal(0, 0.06))),
            "t1_30": float(math.exp(rng.normal(0, 0.06))),
            "pd": float(math.exp(rng.normal(0, 0.03))),
            "adc": float(math.exp(rng.normal(0, 0.04))),
            "gd": float(math.exp(rng.normal(0, 0.15))),
        }
        for tissue in TISSUES
        if tissue not in ("air", "gas", "tumour", "tumour_necrosis")
    }
    if "marrow" in tissue_factors:  # marrow turns fatty with age
        tissue_factors["marrow"]["fat"] = float(np.clip((0.9 + 0.002 * (age - 30) + rng.normal(0, 0.03)) / 0.95, 0.88, 1.05))

    gas = rectum.scaled(-4.0) if content == "gas" else None
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
                   "half_axes_mm": [round(wu, 1), round(du, 1), round(hu, 1)], "leiomyomas": len(fibroids)},
        "bladder_filling": round(fill, 3),
        "rectal_content": content,
        "femoral_head_centers_mm": [np.round(P.point(c), 2).tolist() for c in head_centers],
        "tumour": {
            "center_mm": np.round(tumour_center, 3).tolist(),
            "latent_diameter_mm": round(diameter, 2),
            "volume_ml": round(volume_mm3 / 1000.0, 3),
            "max_diameter_mm": round(max_diam, 2),
            "irregularity": round(irregularity, 3),
            "infiltrative_margin_mm": round(fine_margin, 3),
            "extension": ext_truth,
            "necrosis": necrosis is not None,
            "cervix_axis": np.round(cervix_axis_a, 5).tolist(),
        },
    }
    body_center = P.point([0, 10 * s, 0])
    return Anatomy(
        structures=structures,
        tumour=tumour,
        necrosis=necrosis,
        cellularity_field=cell_field,
        enhancement_field=enh_field,
        nodes=nodes,
        cervix_center=cervix_center,
        cervix_axis=rot_c_a[:, 2] / np.linalg.norm(rot_c_a[:, 2]),
        body_center=body_center,
        body_front_y=float(P.point([0, -88 * s - fat_ant, 0])[1]),
        body_back_y=float(P.point([0, 120 * s + fat_post, 0])[1]),
        gas=gas,
        tumour_volume_ml=volume_mm3 / 1000.0,
        tumour_max_diameter_mm=max_diam,
        tissue_factors=tissue_factors,
        truth=truth,
    )


def _muscles(rng: np.random.Generator, P: _Pose, s: float) -> list[Structure]:
    """Pelvic and proximal thigh muscles, each in a fat sheath, both sides."""
    out = []
    irregular = lambda shape, amp=2.5: Coarse(_irregular(rng, shape, 16.0, amp), 3)  # noqa: E731
    for side in (1, -1):
        n = "left" if side > 0 else "right"
        j = lambda sd=1.0: float(rng.normal(1.0, 0.07 * sd))  # noqa: E731
        rz = lambda deg, side=side: rz_deg(side, deg)  # noqa: E731
        specs = [
            ("gluteus_maximus", "gluteal_muscle", irregular(P.ellipsoid([side * 82 * s, 96 * s, -30], [70 * s * j(), 34 * s * j(), 88],
                                                                        rz(36), precise=False), 3.0)),
            ("gluteus_medius", "gluteal_muscle", irregular(P.ellipsoid([side * 118 * s, 40 * s, 46], [26 * s * j(), 56 * s, 48 * s],
                                                                       rz(14), precise=False))),
            ("gluteus_minimus", "gluteal_muscle", irregular(P.ellipsoid([side * 104 * s, 18 * s, 28], [15 * s, 42 * s, 30 * s],
                                                                        rz(18), precise=False))),
            ("iliacus", "iliopsoas", irregular(P.ellipsoid([side * 62 * s, 10 * s, 52], [14 * s * j(), 42 * s, 34],
                                                           rz(-38), precise=False))),
            ("psoas", "iliopsoas", irregular(P.segment([side * 40 * s, 8 * s, 130], [side * 58 * s, -22 * s, 30], 17 * s * j(),
                                                       16 * s, precise=False))),
            ("iliopsoas", "iliopsoas", irregular(P.segment([side * 60 * s, -24 * s, 40], [side * 76 * s, -40 * s, -10], 23 * s * j(),
                                                           19 * s, precise=False))),
            ("iliopsoas_tendon", "iliopsoas", irregular(P.segment([side * 76 * s, -38 * s, -10], [side * 104 * s, 6 * s, -52], 14 * s,
                                                                  8 * s, precise=False), 1.5)),
            ("obturator_internus", "obturator_internus", irregular(P.ellipsoid([side * 48 * s, 6 * s, -12], [8 * s * j(), 36 * s, 32 * s],
                                                                               rz(6), precise=False), 1.5)),
            ("obturator_internus_exit", "obturator_internus", irregular(P.segment([side * 55 * s, 34 * s, -22], [side * 112 * s, 30 * s, -22],
                                                                                  8 * s, 6 * s, precise=False), 1.0)),
            ("piriformis", "piriformis", irregular(P.segment([side * 24 * s, 66 * s, 40], [side * 118 * s, 18 * s, 6],
                                                             13 * s * j(), 7 * s, precise=False), 1.5)),
            ("obturator_externus", "other_muscle", irregular(P.ellipsoid([side * 66 * s, -24 * s, -46], [17 * s, 28 * s, 16 * s],
                                                                         rz(20), precise=False), 1.5)),
            ("quadratus_femoris", "other_muscle", irregular(P.ellipsoid([side * 98 * s, 36 * s, -46], [26 * s, 13 * s, 15 * s],
                                                                        rz(-10), precise=False), 1.5)),
            ("adductors", "other_muscle", irregular(P.ellipsoid([side * 64 * s, 4 * s, -120], [36 * s, 42 * s, 72],
                                                                 rz(10), precise=False))),
            ("pectineus", "other_muscle", irregular(P.ellipsoid([side * 60 * s, -44 * s, -60], [14 * s, 13 * s, 28],
                                                                rz(30), precise=False), 1.5)),
            ("hamstrings", "other_muscle", irregular(P.segment([side * 78 * s, 44 * s, -62], [side * 92 * s, 50 * s, -250],
                                                               20 * s, 34 * s, precise=False))),
            ("vastus", "other_muscle", irregular(P.segment([side * 120 * s, -14 * s, -40], [side * 114 * s, -22 * s, -250],
                                                           44 * s, 46 * s, precise=False))),
            ("rectus_femoris", "other_muscle", irregular(P.segment([side * 104 * s, -62 * s, -10], [side * 104 * s, -78 * s, -250],
                                                                   13 * s, 18 * s, precise=False), 1.5)),
            ("sartorius", "other_muscle", irregular(P.segment([side * 118 * s, -60 * s, 20], [side * 80 * s, -72 * s, -220],
                                                              10 * s, precise=False), 1.5)),
            ("tensor_fasciae_latae", "other_muscle", irregular(P.ellipsoid([side * 134 * s, -36 * s, -20], [11 * s, 17 * s, 44],
                                                                           precise=False), 1.5)),
            ("rectus_abdominis", "other_muscle", irregular(P.ellipsoid([side * 28 * s, -82 * s, 45], [27 * s, 7.5, 75],
                                                                       precise=False), 1.5)),
            ("oblique_muscles", "other_muscle", irregular(P.ellipsoid([side * 128 * s, -30 * s, 100], [14 * s, 62 * s, 50],
                                                                      rz(-25), precise=False), 2.0)),
        ]
        for name, label, shape in specs:
            out.append(_muscle(f"{name}_{n}", label, shape))
    return out


def _bones(rng: np.random.Generator, P: _Pose, s: float) -> tuple[list[Structure], list[np.ndarray]]:
    """Hip bones, femora, sacrum and coccyx (cortex and marrow); the femoral heads in their joints."""
    out: list[Structure] = []
    heads = []
    for side in (1, -1):
        n = "left" if side > 0 else "right"
        r_head = float(23 * s * rng.normal(1.0, 0.04))
        head_c = np.array([side * 88 * s, -8 * s, 4.0])
        heads.append(head_c)
        acetabulum = Coarse(P.ellipsoid(head_c + np.array([-side * 6 * s, 2 * s, 8]), [r_head + 5, r_head + 10, r_head + 11],
                                        precise=False), 2)
        # iliac wing: a curved plate (part of the shell of a cylinder-like ellipsoid whose axis
        # lies in front of the pelvis), thickening into the ilium body above the acetabulum
        wing_surface = P.ellipsoid([side * 12 * s, -40 * s, 150], [106 * s, 106 * s, 170], precise=False)
        wing_region = P.ellipsoid([side * 92 * s, 22 * s, 72], [48 * s, 58 * s, 46 * s], rz_deg(side, -40))
        wing = Intersection(Shell(wing_surface, float(rng.uniform(7, 10)) * s), wing_region)
        body = P.ellipsoid([side * 76 * s, 26 * s, 34], [17 * s, 34 * s, 20 * s], rz_deg(side, -45), precise=False)
        ilium = Coarse(Union([wing, body], smooth=8.0), 2)
        ischium = Coarse(P.segment(head_c + np.array([-side * 4 * s, 20 * s, -6]), [side * 76 * s, 40 * s, -60], 13 * s, 12 * s,
                                   precise=False), 2)
        pubis_sup = Coarse(P.segment(head_c + np.array([-side * 8 * s, -16 * s, -4]), [side * 10 * s, -60 * s, -26],
                                     10 * s, 9 * s, precise=False), 2)
        pubis_inf = Coarse(P.segment([side * 12 * s, -58 * s, -42], [side * 68 * s, 36 * s, -62], 8 * s, 9 * s,
                                     precise=False), 2)
        hip = Union([acetabulum, ilium, ischium, pubis_sup, pubis_inf], smooth=6.0)
        out.append(_bone(f"hip_bone_{n}", "hip_bone", hip, 1.6))
        # femur: head in its joint space (cartilage), neck, trochanters, shaft
        head = P.ellipsoid(head_c, [r_head] * 3)
        out.append(Structure(f"femoral_head_{n}", "femoral_head", [
            Layer(P.ellipsoid(head_c, [r_head + 1.8] * 3), "cartilage", label="hip_bone"),
            Layer(head, "cortex"),
            Layer(head.scaled(-1.0), "marrow", "marrow"),
        ]))
        femur = Coarse(Union([
            P.segment(head_c + np.array([side * 10 * s, 2 * s, -6]), [side * 126 * s, 2 * s, -24], 14 * s),
            P.ellipsoid([side * 130 * s, 6 * s, -26], [16 * s, 22 * s, 26 * s]),
            P.ellipsoid([side * 110 * s, 12 * s, -52], [9 * s, 10 * s, 12 * s]),
            P.segment([side * 124 * s, 4 * s, -34], [side * 116 * s, -6 * s, -260], 14 * s),
        ], smooth=6.0), 2)
        out.append(Structure(f"femur_{n}", "femur", [
            Layer(femur, "cortex"),
            Layer(grown(femur, -2.8), "marrow", "marrow"),
        ]))
    symphysis = P.ellipsoid([0, -63 * s, -34], [12 * s, 10 * s, 22 * s])
    out.append(Structure("pubic_symphysis", "hip_bone", [
        Layer(symphysis, "cortex"), Layer(symphysis.scaled(-2.0), "marrow", "marrow"),
        Layer(P.ellipsoid([0, -63 * s, -34], [1.6, 9 * s, 20 * s]), "fascia"),
    ]))
    # sacrum and coccyx: a curved tapering wedge along z, concave forwards, with its canal
    sacrum = Tube(P.point([0, 0, 0]), P.rot(), -70.0, 105.0, cy=(70 * s, 0.30, 0.0018), rx=(28 * s, 0.32),
                  ry=(11 * s, 0.06))
    canal = Tube(P.point([0, 0, 0]), P.rot(), -15.0, 105.0, cy=(70 * s + 10 * s, 0.30, 0.0018), rx=(7 * s, 0.03),
                 ry=(4 * s, 0.02))
    out.append(Structure("sacrum_coccyx", "sacrum_coccyx", [
        Layer(sacrum, "cortex"), Layer(sacrum.scaled(-2.4), "marrow", "marrow"), Layer(canal, "csf", "fluid"),
    ], in_plane_normals=True))
    return out, heads


def rz_deg(side: int, degrees: float) -> np.ndarray:
    """Rotation about z by `degrees`, mirrored for the right side."""
    return rotation_matrix(rz=side * degrees * DEG)


def _small_vessels(rng: np.random.Generator, P: _Pose, s: float, count: int, region: str) -> list[Structure]:
    """Small arteries and veins (0.7-2.5 mm) running through fat: dark flow voids or slow-flow veins."""
    out = []
    for index in range(count):
        if region == "subcutaneous":
            angle = rng.uniform(0, 2 * np.pi)
            radius = np.array([160 * s, 125 * s])
            center = np.array([math.cos(angle) * radius[0], 12 * s + math.sin(angle) * radius[1], rng.uniform(-80, 90)])
        else:
            center = np.array([rng.uniform(-90, 90) * s, rng.uniform(-60, 100) * s, rng.uniform(-70, 90)])
        direction = rng.normal(0, 1, 3)
        direction[2] *= 1.8  # mostly running cranio-caudally
        direction /= np.linalg.norm(direction)
        length = float(rng.uniform(15, 70))
        radius_mm = float(rng.uniform(0.6, 2.4))
        is_artery = rng.random() < 0.35
        points = _random_path(rng, center, direction, 3, length / 3, 0.35, center - 80, center + 80)
        parts = [P.capsule(a, b, radius_mm) for a, b in zip(points[:-1], points[1:])]
        tissue = "artery" if is_artery else "vein"
        out.append(Structure(f"{region}_vessel_{index + 1}", tissue, [
            Layer(Union(parts), tissue, only_over=FAT_LABELS, flow=None if is_artery else float(rng.uniform(0.1, 1.2)),
                  rough=False)]))
    return out


def _bowel_loops(rng: np.random.Generator, P: _Pose, rectum_y: float, rectum_r: float, uterus_center: np.ndarray,
                 uterus_height: float) -> list[Structure]:
    """Sigmoid colon (from the top of the rectum) and small-bowel loops in the upper pelvis."""
    loops = []
    start = np.array([0.0, rectum_y + 0.25 * 45 + 0.0018 * 45**2, 42.0])
    sigmoid = _random_path(rng, start, np.array([0.6, -0.5, 0.6]), 5, 16.0, 0.4,
                           np.array([-70, -40, 30.0]), np.array([80, 80, 120.0]))
    specs = [("sigmoid_colon", sigmoid, float(rng.uniform(11, 16)))]
    top = float(uterus_center[2] + uterus_height * 0.6)
    # the abdominal cavity above the bladder and the uterus is packed with small-bowel loops
    for _ in range(int(rng.integers(14, 26))):
        a = np.array([rng.uniform(-85, 85), rng.uniform(-65, 35), rng.uniform(max(top - 15, 25), 135)])
        path = _random_path(rng, a, rng.normal(0, 1, 3), int(rng.integers(4, 9)), float(rng.uniform(10, 18)), 0.8,
                            np.array([-95, -72, max(top - 15, 20)]), np.array([95, 40, 145.0]))
        specs.append(("small_bowel", path, float(rng.uniform(8, 14))))
    for n, (label, path, radius) in enumerate(specs):
        tube = Union([P.capsule(a, b, radius) for a, b in zip(path[:-1], path[1:])], smooth=3.0)
        tube = _irregular(rng, tube, 10.0, 1.2)
        kind = str(rng.choice(["gas", "bowel_fluid", "chyme", "faeces" if label == "sigmoid_colon" else "chyme"],
                              p=[0.2, 0.3, 0.3, 0.2]))
        texture = {"gas": None, "bowel_fluid": "fluid", "chyme": "organ", "faeces": "faeces"}[kind]
        wall = float(rng.uniform(1.5, 3.0))
        loops.append(Structure(f"bowel_{n + 1}", label, [
            Layer(tube, "bowel_wall", "wall"),
            Layer(grown(tube, -wall), kind, texture),
        ]))
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
        layers = [Layer(ovary, "ovary", "organ")]
        if premenopausal:
            follicles = []
            for _ in range(int(rng.integers(3, 8))):
                r = float(rng.uniform(2.0, 6.5))
                offset = rng.uniform(-1, 1, 3) * np.maximum(radii - r - 1, 0.5)
                follicles.append(P.ellipsoid(center + rot @ offset, [r, r * 0.9, r]))
            layers.append(Layer(Union(follicles), "follicle", "fluid", rough=False))
        out.append(Structure(f"ovary_{'left' if side > 0 else 'right'}", "ovary", layers))
    return out


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
        layers = [Layer(shape, "node", "organ", rough=False)]
        if necrotic:
            layers.append(Layer(shape.scaled(-short * 0.28), "node_necrosis", rough=False))
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
        return np.array([side * (40 * s - 2 - short / 2), rng.uniform(-12, 14) * s, rng.uniform(-12, 16)])
    start, end, vessel_r = vessel_lines[(side, "external" if station == "external_iliac" else "internal")]
    t = float(rng.uniform(0.35, 0.85))
    point = start + t * (end - start)
    offset = vessel_r + short / 2 + 1.5
    return point + np.array([-side * offset * 0.8, offset * 0.6, rng.normal(0, 3)])
