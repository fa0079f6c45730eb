"""A synthetic case as one DICOM study: the tags an MR scanner writes, clearly synthetic identity.

    <case>/dicom/02_T2_TSE_TRA/IM0001.dcm ...        T2W (axial or oblique axial)
    <case>/dicom/03_T2_TSE_SAG/...                    sagittal T2WI (generator 2)
    <case>/dicom/05_ep2d_diff_tra_b1000/...           DWI: b=0 and b=800/1000 volumes in one series
    <case>/dicom/06_ep2d_diff_tra_ADC/...             ADC (DERIVED, values in 1e-6 mm2/s)
    <case>/dicom/09_T1_VIBE_TRA_POST_GD/...           CE-T1WI (ContrastBolusAgent set)

Patient: PatientName "SYNTHETIC^<case id>", PatientID = case id. Study date fixed per seed.
UIDs derive from (generator, seed, case id, series), so the same seed gives the same UIDs.
All series share one FrameOfReferenceUID: the patient motion between them is real motion.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from CervicalAILib.io.dicom_write import deterministic_uid, write_dicom_series
from CervicalAILib.research.synth.case import SyntheticCase
from CervicalAILib.research.synth.params import GENERATOR_NAME, GENERATOR_VERSION
from CervicalAILib.research.synth.scanner import Protocol

SERIES_NUMBERS = {"T2W": 2, "T2W_SAG": 3, "DWI": 5, "ADC": 6, "CET1": 9}
CONTRAST_AGENT = "Gadoterate meglumine"


def study_date(seed: int) -> dt.date:
    """Study date of a cohort: fixed per seed (within 2025)."""
    return dt.date(2025, 1, 1) + dt.timedelta(days=int(seed) % 365)


def _folder_name(number: int, description: str) -> str:
    return f"{number:02d}_" + re.sub(r"[^A-Za-z0-9]+", "_", description).strip("_")


def _protocol_tags(protocol: Protocol, field_strength: float, acquired: list[int] | None = None) -> dict[str, Any]:
    phase = getattr(protocol, "phase_direction", "COL")
    tags: dict[str, Any] = {}
    if acquired:  # (frequency rows, frequency columns, phase rows, phase columns)
        columns_acq, rows_acq = int(acquired[0]), int(acquired[1])
        tags["AcquisitionMatrix"] = [0, columns_acq, rows_acq, 0] if phase == "ROW" else [columns_acq, 0, 0, rows_acq]
    return tags | {
        "ScanningSequence": protocol.scanning_sequence.split("\\"),
        "SequenceVariant": protocol.sequence_variant.split("\\"),
        "ScanOptions": protocol.scan_options.split("\\"),
        "MRAcquisitionType": protocol.acquisition_type,
        "EchoTime": round(protocol.echo_time_ms, 2),
        "RepetitionTime": round(protocol.repetition_time_ms, 1),
        "FlipAngle": protocol.flip_angle_deg,
        "EchoTrainLength": protocol.echo_train_length,
        "NumberOfAverages": 1.0 if protocol.role != "DWI" else 4.0,
        "ImagingFrequency": round(42.577478 * field_strength, 6),
        "ImagedNucleus": "1H",
        "MagneticFieldStrength": field_strength,
        "PercentPhaseFieldOfView": round(100.0 * protocol.phase_fov, 2),
        "PercentSampling": 100.0,
        "InPlanePhaseEncodingDirection": phase,
        "ProtocolName": protocol.description.replace(" ", "_").lower()
        if protocol.role != "DWI" else "ep2d_diff_tra",
    }


def write_case_dicom(case: SyntheticCase, folder: str | Path, seed: int) -> Path:
    """Write the four images of `case` as one DICOM study under `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    center = case.center
    if center is None or case.dwi_b0 is None:
        raise ValueError("case has no scanner profile or b=0 image (make it with generate_case)")
    date = study_date(seed)
    minutes = 8 * 60 + (case.case_index * 23) % (9 * 60)
    time_of_day = f"{minutes // 60:02d}{minutes % 60:02d}00"
    age = int(case.clinical["age"])
    try:
        birth = date.replace(year=date.year - age)
    except ValueError:  # 29 February
        birth = date.replace(year=date.year - age, day=28)
    identity = (GENERATOR_NAME, GENERATOR_VERSION, int(seed), case.case_id)
    common = {
        "PatientName": f"SYNTHETIC^{case.case_id}",
        "PatientID": case.case_id,
        "PatientBirthDate": birth.strftime("%Y%m%d"),
        "PatientSex": "F",
        "PatientAge": f"{age:03d}Y",
        "PatientIdentityRemoved": "YES",
        "StudyInstanceUID": deterministic_uid(*identity, "study"),
        "FrameOfReferenceUID": deterministic_uid(*identity, "frame-of-reference"),
        "StudyDate": date.strftime("%Y%m%d"),
        "StudyTime": time_of_day,
        "SeriesDate": date.strftime("%Y%m%d"),
        "ContentDate": date.strftime("%Y%m%d"),
        "AcquisitionDate": date.strftime("%Y%m%d"),
        "StudyID": "1",
        "AccessionNumber": f"A{int(seed) % 10000:04d}{case.case_index + 1:06d}",
        "StudyDescription": "PELVIS MRI CERVIX (SYNTHETIC)",
        "ReferringPhysicianName": "",
        "BodyPartExamined": "PELVIS",
        "PatientPosition": "HFS",
        "Manufacturer": center.manufacturer,
        "ManufacturerModelName": center.model,
        "InstitutionName": f"Synthetic Centre {center.letter}",
        "StationName": f"SYNMR{center.letter}",
        "SoftwareVersions": f"cervicalai-synth {GENERATOR_VERSION}",
        "PositionReferenceIndicator": "",
    }
    b_value = float(center.b_value)
    roles = ["T2W", *[r for r in ("T2W_SAG",) if r in case.extra_images], "DWI", "ADC", "CET1"]
    for role in roles:
        protocol = center.protocol(role)
        number = SERIES_NUMBERS[role]
        description = protocol.description if role != "ADC" else "ep2d_diff_tra_ADC"
        series = {
            "SeriesNumber": number,
            "SeriesDescription": description,
            "SeriesTime": time_of_day,
            "AcquisitionTime": time_of_day,
            "ContentTime": time_of_day,
            "SliceThickness": float(protocol.thickness_mm),
            "AcquisitionNumber": 1,
            **_protocol_tags(protocol, center.field_strength_t,
                             case.truth.get("series", {}).get(role, {}).get("acquired_matrix")),
        }
        volumes: list[tuple[Any, dict[str, Any]]]
        if role in ("T2W", "T2W_SAG", "CET1"):
            series["ImageType"] = ["ORIGINAL", "PRIMARY", "M", "ND"]
            volumes = [(case.images[role] if role in case.images else case.extra_images[role], {})]
        elif role == "DWI":
            series["ImageType"] = ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW", "ND"]
            series["DiffusionDirectionality"] = "ISOTROPIC"
            volumes = [
                (case.dwi_b0, {"DiffusionBValue": 0.0, "SequenceName": "*ep_b0"}),
                (case.images["DWI"], {"DiffusionBValue": b_value, "SequenceName": f"*ep_b{int(b_value)}t"}),
            ]
        else:
            series["ImageType"] = ["DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND"]
            series["SequenceName"] = "*ep_b0_" + str(int(b_value))
            volumes = [(case.images["ADC"], {})]
        if role == "CET1":
            series.update({
                "ContrastBolusAgent": CONTRAST_AGENT,
                "ContrastBolusRoute": "IV",
                "ContrastBolusVolume": 15.0,
                "ContrastBolusIngredient": "GADOLINIUM",
            })
        window = {"T2W": (900, 1800), "T2W_SAG": (900, 1800), "DWI": (200, 500), "ADC": (1400, 2800),
                  "CET1": (700, 1400)}[role]
        series["WindowCenter"], series["WindowWidth"] = window
        write_dicom_series(volumes, folder / _folder_name(number, description), common_tags=common,
                           series_tags=series, uid_seed=(*identity, role))
    return folder
