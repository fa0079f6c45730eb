"""Tissue signal model: what each tissue looks like on each sequence.

Values are relative signals before the centre's gain (T2WI with and without fat suppression,
b=0 EPI signal S0 for DWI, post-contrast fat-suppressed T1WI) and ADC in 1e-6 mm2/s. The
diffusion-weighted signal follows the mono-exponential model S_b = S0 * exp(-b * ADC), and the
ADC map is computed from the noisy b=0 and b images the way a scanner does, so DWI and ADC are
physically consistent (tumour bright on DWI and dark on ADC, urine dark on high-b DWI and
bright on ADC, fat suppressed on DWI and noisy on the ADC map).

Literature anchors (approximate): normal cervical stroma ADC 1.5-2.0e-3 mm2/s, cervical
carcinoma 0.7-1.0e-3, urine ~3.0e-3, muscle ~1.4e-3, normal lymph nodes ~1.0e-3.
"""

from __future__ import annotations

# name: (T2 no fat-sat, T2 fat-sat, S0 (DWI b=0, fat-sat), ADC 1e-6 mm2/s, CE-T1 fat-sat)
TISSUES: dict[str, tuple[float, float, float, float, float]] = {
    "air": (0.0, 0.0, 0.0, 0.0, 0.0),
    "fat": (640.0, 70.0, 38.0, 150.0, 55.0),
    "muscle": (130.0, 122.0, 170.0, 1450.0, 190.0),
    "cortex": (22.0, 22.0, 18.0, 300.0, 28.0),
    "marrow": (520.0, 95.0, 60.0, 450.0, 140.0),
    "urine": (1500.0, 1450.0, 1400.0, 2950.0, 70.0),
    "bladder_wall": (160.0, 150.0, 240.0, 1500.0, 520.0),
    "myometrium": (420.0, 400.0, 480.0, 1550.0, 660.0),
    "junctional_zone": (160.0, 150.0, 340.0, 1300.0, 480.0),
    "endometrium": (820.0, 780.0, 760.0, 1300.0, 380.0),
    "cervix_stroma": (110.0, 100.0, 260.0, 1700.0, 430.0),
    "cervix_mucosa": (640.0, 610.0, 600.0, 1800.0, 620.0),
    "vagina_wall": (190.0, 180.0, 320.0, 1450.0, 500.0),
    "vagina_lumen": (450.0, 430.0, 500.0, 2000.0, 350.0),
    "rectum_wall": (170.0, 160.0, 330.0, 1350.0, 520.0),
    "rectal_gas": (12.0, 12.0, 8.0, 0.0, 12.0),
    "rectal_content": (320.0, 300.0, 340.0, 1200.0, 200.0),
    "parametrium": (590.0, 250.0, 200.0, 1600.0, 200.0),  # fat, connective tissue and vessels
    "artery": (40.0, 40.0, 30.0, 2500.0, 850.0),
    "vein": (300.0, 280.0, 60.0, 2500.0, 800.0),
    "node": (330.0, 310.0, 560.0, 1000.0, 420.0),
    "node_necrosis": (800.0, 770.0, 700.0, 2100.0, 90.0),
    "ovary": (380.0, 360.0, 420.0, 1500.0, 420.0),
    "follicle": (1300.0, 1250.0, 1100.0, 2800.0, 70.0),
    "bowel_wall": (190.0, 180.0, 330.0, 1300.0, 560.0),
    "bowel_fluid": (900.0, 870.0, 800.0, 2600.0, 90.0),
    "tumour": (420.0, 400.0, 650.0, 880.0, 430.0),  # ADC and enhancement replaced by the latent biology
    "tumour_necrosis": (850.0, 820.0, 800.0, 2300.0, 80.0),
}

# Relative texture amplitude per channel of the tumour's cellularity field (scaled by the latent
# heterogeneity): cellular regions are a little darker on T2WI, brighter on S0, lower on ADC.
TUMOUR_CELLULARITY_TEXTURE = {"t2": -1.0, "s0": 0.5, "adc": -0.6}

# Intensity around which a centre's contrast (gamma) is applied.
CONTRAST_REFERENCE = 300.0


def tissue_channels(name: str, fat_suppressed_t2: bool) -> dict[str, float]:
    """Relative signals of one tissue: t2, s0, adc, t1c."""
    t2, t2fs, s0, adc, t1c = TISSUES[name]
    return {"t2": t2fs if fat_suppressed_t2 else t2, "s0": s0, "adc": adc, "t1c": t1c}
