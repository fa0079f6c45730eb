"""What a series looks like (T2W, DWI, ADC, CET1, a T1 without contrast, or other), and why, from its
DICOM header: the role vocabulary and `recognise`.

What a DICOM series *is* comes from its tags, never from file names: ImageType (DIFFUSION,
ADC, ...), b-values (standard and vendor tags), SeriesDescription/ProtocolName keywords,
ScanningSequence with EchoTime/RepetitionTime, ContrastBolusAgent. Which series then plays each
role is `roles.assign_roles`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from CervicalAILib.io.dicom.frames import SeriesHeader
from CervicalAILib.io.dicom.tags import sequence_name_b_range

OTHER = "other"
ROLE_NAMES = {
    "T2W": "T2-weighted (T2WI)",
    "DWI": "diffusion-weighted, high b-value (DWI)",
    "ADC": "apparent diffusion coefficient map (ADC)",
    "CET1": "contrast-enhanced T1-weighted (CE-T1WI)",
}
# Kinds a series can be recognised as (roles plus T1W: a T1 without contrast evidence).
T1_WITHOUT_CONTRAST = "T1W"

_B = r"(?<![a-z0-9])"  # start of a word (underscores and punctuation separate words)
_E = r"(?![a-z0-9])"  # end of a word


def _any(patterns: Iterable[str], text: str) -> str | None:
    """The first pattern that matches `text` (for the reason shown to the user), or None."""
    for pattern in patterns:
        match = re.search(pattern, text)
        if match:
            return match.group(0).strip()
    return None


LOCALIZER_WORDS = [
    _B + r"(loc|localizer|localiser|scout|survey|tri-?pilot|3[-_ ]?plane|aahscout|calibration|asset[-_ ]?cal|ref)" + _E
]
ADC_WORDS = [_B + r"d?adc" + r"(?![a-z])", r"adc(?=map)", r"apparent[-_ ]diffusion"]
DIFFUSION_MAP_WORDS = [_B + r"(eadc|exp|fa|colfa|tensor|trace[-_]?adc|md)" + _E, r"exponential"]
DIFFUSION_WORDS = [
    _B + r"(dwi|diff|diffusion|dw|ep2d[-_ ]?diff|resolve|zoomit|ivim|readout[-_ ]segmented)" + _E,
    _B + r"b\s*=?\s*\d{2,4}" + _E,
]
CALCULATED_WORDS = [r"calc", r"comput", r"synth", _B + r"c-?dwi" + _E, r"extrapol"]
CALCULATED_IMAGE_TYPES = {"CALC", "CALCULATED", "COMPUTED", "SYNTHETIC", "CALC_BVAL", "CALC_IMAGE"}
DIFFUSION_IMAGE_TYPES = {"DIFFUSION", "TRACEW", "TRACE", "ISODWI", "DWI"}
T2_STAR_WORDS = [r"t2\s*\*", r"t2[-_ ]?star", _B + r"(swi|swan|medic|merge|hemo)" + _E]
T2_WORDS = [_B + r"[sr]?t2(?![0-9*])", _B + r"(haste|ssfse|ss-fse)" + _E]
T1_WORDS = [
    _B + r"[sr]?t1(?![0-9])",
    r"vibe",
    _B + r"(lava|thrive|e-?thrive|flash|mprage|spgr|fspgr|bravo|twist|disco|fl3d|quick3d)",
]
PD_WORDS = [_B + r"pd(w|fs)?" + _E, r"proton[-_ ]density"]
OTHER_CONTRAST_WORDS = [r"flair", _B + r"(trufi|fiesta|bffe|b-ffe|ssfp|true[-_ ]?fisp|fisp)" + _E]
PROCESSED_WORDS = [
    _B + r"(sub|subtraction|mip|mpr|perfusion|ktrans|kep|map|colou?r|screen ?shot|report)" + _E,
]
FAT_SUPPRESSION_WORDS = [_B + r"(fs|fatsat|fat[-_ ]?sat|spair|spir|stir|tirm|fat[-_ ]?supp\w*|dixon[-_ ]?w)" + _E]
PRE_CONTRAST_WORDS = [
    _B + r"pre(?![a-z])",
    r"pre[-_ ]?contrast",
    _B + r"nati(ve|v)" + _E,
    r"unenhanced",
    r"non[-_ ]?contrast",
    r"without[-_ ]contrast",
    r"w/o",
    _B + r"plain" + _E,
]
POST_CONTRAST_WORDS = [
    r"\+\s*c(?![a-z])",
    _B + r"c\s*\+",
    _B + r"post",
    r"gado",
    _B + r"(gad|gd|ce|dce|dyn|dynamic|delayed|late|enhanced)" + _E,
    r"\+\s*gd",
    r"contrast",
]


@dataclass
class Recognition:
    """What a series looks like, and why."""

    kind: str  # T2W, DWI, ADC, CET1, T1W (T1 without contrast evidence) or other
    reason: str
    is_calculated: bool = False
    fat_suppressed: bool = False
    derived: bool = False


def _weighting_from_parameters(header: SeriesHeader) -> tuple[str | None, str]:
    """T2 / T1 / PD weighting from ScanningSequence, TR, TE, TI (ms) when keywords are silent."""
    te, tr, ti = header.echo_time, header.repetition_time, header.inversion_time
    if te is None or tr is None:
        return None, ""
    sequence = header.scanning_sequence
    params = f"TR {tr:g} ms, TE {te:g} ms"
    if "EP" in sequence:
        return None, ""
    if "IR" in sequence and ti is not None:
        if ti >= 1500:
            return "FLAIR", f"inversion recovery with TI {ti:g} ms (FLAIR)"
        if ti <= 250 and te >= 40:
            return "T2", f"STIR: TI {ti:g} ms, {params}"
    if "GR" in sequence and "SE" not in sequence:
        if tr <= 50 and te <= 10 and (header.flip_angle is None or header.flip_angle >= 8):
            return "T1", f"spoiled gradient echo, {params}"
        return None, ""
    if tr >= 1500 and te >= 60:
        return "T2", f"long TR and TE ({params})"
    if tr <= 1000 and te <= 30:
        return "T1", f"short TR and TE ({params})"
    if tr >= 1500 and te <= 40:
        return "PD", f"long TR, short TE ({params})"
    return None, ""


def recognise(header: SeriesHeader, b_values: Sequence[float]) -> Recognition:
    """Recognise a DICOM series from its tags (never from file names).

    Keywords that distinguish series made by one protocol (ADC, calculated b-value, subtraction)
    are read from SeriesDescription only, since ProtocolName is shared by all of them (a Siemens
    protocol "..._ADC" also names its trace-weighted series); weighting and contrast keywords
    come from SeriesDescription first, then ProtocolName, then the timing tags.
    """
    description = (header.series_description or header.protocol_name).lower()
    protocol = header.protocol_name.lower()
    text = f"{description} {protocol}"
    image_type = set(header.image_type)
    derived = bool(header.image_type) and header.image_type[0] == "DERIVED"
    fat = _any(FAT_SUPPRESSION_WORDS, text) is not None or any(
        option in header.scan_options.split("\\") for option in ("FS", "SFS", "FAT_SAT", "SPAIR", "FSA")
    )
    if header.modality and header.modality != "MR":
        return Recognition(OTHER, f"modality {header.modality}, not MR")
    if "LOCALIZER" in image_type:
        return Recognition(OTHER, "localizer (ImageType LOCALIZER)")
    if word := _any(LOCALIZER_WORDS, text):
        return Recognition(OTHER, f"localizer/reference scan ('{word}' in description)")
    if image_type & {"EADC", "FA", "EXP"} or (word := _any(DIFFUSION_MAP_WORDS, description)):
        return Recognition(OTHER, "diffusion map other than ADC (exponential ADC, FA, ...)", derived=True)
    if "ADC" in image_type:
        return Recognition("ADC", "ImageType ADC", derived=True)
    several_b = len(set(b_values)) > 1
    if (word := _any(ADC_WORDS, description)) and not ("TRACEW" in image_type or several_b):
        return Recognition("ADC", f"'{word}' in description", derived=True)
    diffusion_type = image_type & DIFFUSION_IMAGE_TYPES
    diffusion_word = _any(DIFFUSION_WORDS, text)
    has_b = any(b > 0 for b in b_values)
    if diffusion_type or has_b or (diffusion_word and "EP" in header.scanning_sequence):
        evidence = (
            f"ImageType {'/'.join(sorted(diffusion_type))}" if diffusion_type
            else "b-values in the headers" if has_b
            else f"echo-planar with '{diffusion_word}' in description"
        )
        calculated = image_type & CALCULATED_IMAGE_TYPES
        word = _any(CALCULATED_WORDS, description)
        b_range = sequence_name_b_range(header.sequence_name)
        if calculated or word or b_range:
            why = (
                f"ImageType {'/'.join(sorted(calculated))}" if calculated
                else f"'{word}' in description" if word
                else f"SequenceName {header.sequence_name}: computed from b {b_range[0]:g}-{b_range[1]:g}"
            )
            return Recognition("DWI", f"{evidence}; calculated b-value image ({why})", is_calculated=True, derived=True)
        return Recognition("DWI", evidence, derived=derived)
    if word := _any(T2_STAR_WORDS, text):
        return Recognition(OTHER, f"T2*-weighted ('{word}' in description)")
    if word := _any(OTHER_CONTRAST_WORDS, text):
        return Recognition(OTHER, f"'{word}' in description (not used for any role)")
    if word := _any(PROCESSED_WORDS, description):
        return Recognition(OTHER, f"processed image ('{word}' in description)", derived=True)
    if "EP" in header.scanning_sequence and not (_any(T2_WORDS, text) or _any(T1_WORDS, text)):
        return Recognition(OTHER, "echo-planar series without diffusion information")

    weighting, why = None, ""
    for source in (description, protocol):
        t2_word, t1_word, pd_word = _any(T2_WORDS, source), _any(T1_WORDS, source), _any(PD_WORDS, source)
        if pd_word and not (t2_word or t1_word):
            return Recognition(OTHER, f"proton-density weighted ('{pd_word}' in description)")
        if t2_word and not t1_word:
            weighting, why = "T2", f"'{t2_word}' in description"
        elif t1_word and not t2_word:
            weighting, why = "T1", f"'{t1_word}' in description"
        if weighting:
            break
    if weighting is None:
        weighting, why = _weighting_from_parameters(header)
    if weighting == "T2":
        return Recognition("T2W", f"T2-weighted: {why}", fat_suppressed=fat, derived=derived)
    if weighting == "T1":
        pre = _any(PRE_CONTRAST_WORDS, description)
        post = _any(POST_CONTRAST_WORDS, description)
        if not (pre or post):
            pre, post = _any(PRE_CONTRAST_WORDS, protocol), _any(POST_CONTRAST_WORDS, protocol)
        if pre:
            return Recognition(T1_WITHOUT_CONTRAST, f"T1-weighted ({why}), pre-contrast ('{pre}' in description)")
        if header.contrast_agent or post:
            evidence = f"ContrastBolusAgent '{header.contrast_agent}'" if header.contrast_agent else f"'{post}' in description"
            return Recognition("CET1", f"T1-weighted ({why}) after contrast ({evidence})", fat_suppressed=fat, derived=derived)
        return Recognition(T1_WITHOUT_CONTRAST, f"T1-weighted ({why}) without contrast evidence")
    if weighting in ("PD", "FLAIR"):
        return Recognition(OTHER, f"{weighting}: {why}")
    return Recognition(OTHER, "no role recognised from description, sequence and timing tags")
