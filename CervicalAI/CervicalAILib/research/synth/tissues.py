"""Tissue MR properties and the signal equations of the sequences (generator 2).

Each tissue has a proton density (relative to water), T1 at 1.5 T and 3 T, T2, ADC, a fat
signal fraction, a gadolinium concentration at the time of the contrast-enhanced T1WI and, for
blood, how much of its signal a spin echo keeps (flow void). A series never uses fixed grey
values: the signal of each tissue comes from these properties through the equation of the
sequence with the centre's echo and repetition times, flip angle and field strength:

- T2WI (2D turbo spin echo):  S = PD (1 - exp(-TR/T1)) exp(-TE/T2)
- DWI (2D spin-echo EPI):     S_b = PD (1 - exp(-TR/T1)) exp(-TE/T2) exp(-b ADC)
- CE-T1WI (3D spoiled GRE):   S = PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE/T2*),
                              E1 = exp(-TR (1/T1 + r1 [Gd]))

Water and fat are separate channels: fat saturation scales the fat channel (incompletely,
and worse towards the edge of the field of view), and the fat channel is shifted along the
read-out direction by the chemical shift. Fat in a turbo spin echo has a long apparent T2
(J-coupling), which is why it is bright on T2WI without fat suppression.

Literature anchors (approximate; 1.5 T / 3 T): muscle T1 1000/1400 ms, T2 35-45 ms, ADC
1.4-1.6e-3 mm2/s; fat T1 260/370 ms; urine T1 ~3000 ms, T2 > 1000 ms, ADC ~3.0e-3 mm2/s;
cervical stroma T2 ~55-70 ms, ADC 1.5-2.0e-3; cervical carcinoma T2 ~90-110 ms, ADC
0.7-1.0e-3; myometrium T2 ~110 ms; junctional zone T2 ~60 ms; normal nodes ADC ~1.0e-3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Tissue:
    pd: float  # proton density relative to water
    t1_15: float  # T1 at 1.5 T (ms)
    t1_30: float  # T1 at 3 T (ms)
    t2: float  # T2 (ms)
    adc: float  # 1e-6 mm2/s
    fat: float = 0.0  # fat signal fraction (0-1)
    gd: float = 0.0  # gadolinium concentration at the CE-T1WI time (mmol/L)
    flow: float = 1.0  # fraction of signal a spin echo keeps (flowing blood: flow void)

    def t1(self, field_strength: float) -> float:
        """T1 at `field_strength` (linear in the field between 1.5 and 3 T)."""
        w = min(max((field_strength - 1.5) / 1.5, 0.0), 1.0)
        return self.t1_15 + w * (self.t1_30 - self.t1_15)


# The fat component of every tissue (its own relaxation and diffusion).
FAT_T1 = {1.5: 260.0, 3.0: 370.0}
FAT_T2_TSE = 180.0  # apparent T2 of fat in a turbo spin echo (J-coupling)
FAT_T2_SE = 75.0  # in a single spin echo (EPI)
FAT_T2_STAR = 35.0
FAT_ADC = 15.0
FAT_CHEMICAL_SHIFT_PPM = 3.4
GYROMAGNETIC_MHZ_PER_T = 42.577478
GD_RELAXIVITY = {1.5: 4.1, 3.0: 3.6}  # r1 (L/mmol/s), gadoterate-like agent

TISSUES: dict[str, Tissue] = {
    "air": Tissue(0.0, 1000, 1000, 1, 0),
    "skin": Tissue(0.72, 900, 1150, 38, 1100, gd=0.4),
    "fat": Tissue(0.95, 260, 370, 60, 20, fat=1.0, gd=0.05),
    "fascia": Tissue(0.55, 900, 1100, 28, 1000, fat=0.1, gd=0.15),
    "muscle": Tissue(0.80, 1000, 1420, 32, 1500, fat=0.02, gd=0.15),
    "cortex": Tissue(0.06, 1000, 1100, 6, 300),
    "marrow": Tissue(0.95, 850, 1050, 48, 500, fat=0.95, gd=0.25),  # fatty (yellow) marrow of the adult pelvis and femur
    "cartilage": Tissue(0.82, 1000, 1250, 42, 1400, gd=0.1),
    "joint_fluid": Tissue(0.95, 2400, 2900, 500, 2800),
    "csf": Tissue(1.0, 3500, 4200, 1500, 3000),
    "urine": Tissue(1.0, 2800, 3700, 700, 3000),
    "bladder_wall": Tissue(0.78, 1000, 1350, 48, 1550, gd=0.55),
    "myometrium": Tissue(0.86, 1200, 1450, 105, 1550, gd=0.85),
    "junctional_zone": Tissue(0.80, 1100, 1350, 60, 1250, gd=0.55),
    "endometrium": Tissue(0.90, 1300, 1600, 160, 1350, gd=0.45),
    "leiomyoma": Tissue(0.76, 1000, 1250, 40, 1150, gd=0.35),
    "cervix_stroma": Tissue(0.80, 1100, 1350, 55, 1700, gd=0.45),
    "cervix_mucosa": Tissue(0.92, 1400, 1700, 200, 1800, gd=0.6),
    "nabothian_cyst": Tissue(1.0, 2500, 3000, 900, 2700),
    "vagina_wall": Tissue(0.80, 1100, 1350, 62, 1450, gd=0.55),
    "vagina_lumen": Tissue(0.90, 1800, 2100, 170, 2000, gd=0.1),
    "rectum_muscularis": Tissue(0.78, 1000, 1350, 46, 1400, gd=0.5),
    "rectum_submucosa": Tissue(0.86, 900, 1200, 100, 1500, fat=0.2, gd=0.55),
    "rectum_mucosa": Tissue(0.85, 1100, 1400, 72, 1300, gd=0.8),
    "gas": Tissue(0.004, 1000, 1000, 20, 0),
    "faeces": Tissue(0.70, 800, 1000, 70, 900, fat=0.1),
    "bowel_wall": Tissue(0.82, 1050, 1350, 70, 1400, gd=0.9),
    "bowel_fluid": Tissue(0.98, 2400, 2800, 600, 2600),
    "chyme": Tissue(0.85, 1200, 1500, 120, 1600),
    "parametrium": Tissue(0.90, 1000, 1300, 90, 1500, fat=0.55, gd=0.5),
    "artery": Tissue(0.95, 1500, 1900, 250, 2500, gd=4.0, flow=0.03),
    "vein": Tissue(0.95, 1500, 1900, 220, 2500, gd=3.0, flow=0.6),
    "node": Tissue(0.82, 1000, 1300, 85, 1000, gd=0.5),
    "node_necrosis": Tissue(0.95, 2000, 2400, 300, 2000, gd=0.02),
    "ovary": Tissue(0.85, 1100, 1400, 80, 1300, gd=0.5),
    "follicle": Tissue(1.0, 2600, 3000, 1000, 2800),
    "free_fluid": Tissue(1.0, 2500, 3000, 900, 3000, gd=0.05),
    "tumour": Tissue(0.88, 1150, 1400, 100, 880, gd=0.75),  # ADC and enhancement from the latent biology
    "tumour_necrosis": Tissue(0.95, 2000, 2400, 260, 2300, gd=0.05),
}


def jittered(tissue: Tissue, factors: dict[str, float]) -> Tissue:
    """The tissue with one patient's biological variation (multiplicative factors per property)."""
    return replace(tissue, **{key: getattr(tissue, key) * value for key, value in factors.items()})


@dataclass(frozen=True)
class SequenceParameters:
    """What the signal equations need from a protocol."""

    kind: str  # "tse", "se_epi" or "gre3d"
    field_strength: float
    te_ms: float
    tr_ms: float
    flip_deg: float = 90.0


def water_signal(tissue: Tissue, seq: SequenceParameters, adc: float | None = None, b: float = 0.0) -> float:
    """Signal of the water component (without the fat fraction's share)."""
    if tissue.pd <= 0:
        return 0.0
    t1 = tissue.t1(seq.field_strength)
    if seq.kind == "gre3d":
        r1 = 1.0 / t1 + GD_RELAXIVITY[_nearest_field(seq.field_strength)] * tissue.gd / 1000.0
        e1 = math.exp(-seq.tr_ms * r1)
        a = math.radians(seq.flip_deg)
        return tissue.pd * math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1) * math.exp(-seq.te_ms / (0.6 * tissue.t2))
    signal = tissue.pd * (1 - math.exp(-seq.tr_ms / t1)) * math.exp(-seq.te_ms / tissue.t2) * tissue.flow
    if b:
        signal *= math.exp(-b * (tissue.adc if adc is None else adc) * 1e-6)
    return signal


def fat_signal(seq: SequenceParameters, pd: float = 0.95, b: float = 0.0) -> float:
    """Signal of pure fat (before fat suppression)."""
    t1 = FAT_T1[_nearest_field(seq.field_strength)]
    if seq.kind == "gre3d":
        e1 = math.exp(-seq.tr_ms / t1)
        a = math.radians(seq.flip_deg)
        return pd * math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1) * math.exp(-seq.te_ms / FAT_T2_STAR)
    t2 = FAT_T2_TSE if seq.kind == "tse" else FAT_T2_SE
    signal = pd * (1 - math.exp(-seq.tr_ms / t1)) * math.exp(-seq.te_ms / t2)
    if b:
        signal *= math.exp(-b * FAT_ADC * 1e-6)
    return signal


def chemical_shift_pixels(field_strength: float, bandwidth_hz_per_pixel: float) -> float:
    """Displacement of fat relative to water along the read-out (or EPI phase) direction, pixels."""
    return FAT_CHEMICAL_SHIFT_PPM * GYROMAGNETIC_MHZ_PER_T * field_strength / max(bandwidth_hz_per_pixel, 1.0)


def _nearest_field(field_strength: float) -> float:
    return 3.0 if field_strength >= 2.25 else 1.5


__all__ = [
    "FAT_ADC",
    "SequenceParameters",
    "TISSUES",
    "Tissue",
    "chemical_shift_pixels",
    "fat_signal",
    "jittered",
    "water_signal",
]
