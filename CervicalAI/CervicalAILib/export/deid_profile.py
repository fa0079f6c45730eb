"""The whitelist the de-identification keeps: every attribute not listed here is removed.

PS3.15 Annex E's Basic Application Level Confidentiality Profile lists what to remove; a list of
what to *remove* misses whatever a site or a vendor put somewhere unexpected (a name in
BodyPartExamined, a record number in SequenceName, PositionReferenceIndicator or an ImageType
value). So the exported objects keep only the attributes below, each with what is done to it,
and lose everything else - private, curve and overlay groups included. The list is what the MR
Image IOD and the Segmentation IOD need (dciodvfy validates the results in the tests), and
nothing else.

Actions:
    KEEP       a technical value kept as it is; numbers (DS, IS, US, FL, ...) are checked to be numbers,
               code strings (CS) to be from `TERMS` where listed there (other values dropped)
    EMPTY      required (type 2) attribute kept empty
    UID        remapped with the keyed UID map (the same original UID always gives the same new UID)
    DATE       shifted by the patient's keyed offset (dates="shift"), else emptied
    TIME       kept with shifted dates (whole-day shifts keep the time of day), else emptied
    PSEUDONYM  the patient's keyed pseudonym (PatientName, PatientID)
    SEQUENCE   kept, its items cleaned by the same whitelist
    OWN        a value CervicalAI wrote itself into the SEG (labels, codes, the algorithm): kept in the
               SEG only; in a source image it is removed like any other unlisted attribute
"""

from __future__ import annotations

KEEP, EMPTY, UID, DATE, TIME, PSEUDONYM, SEQUENCE, OWN = (
    "keep", "empty", "uid", "date", "time", "pseudonym", "sequence", "own")

COMMON = {
    # SOP common, patient, study, series, frame of reference, equipment
    "SpecificCharacterSet": KEEP, "SOPClassUID": KEEP, "SOPInstanceUID": UID, "InstanceCreationDate": DATE,
    "InstanceCreationTime": TIME, "InstanceNumber": KEEP,
    "PatientName": PSEUDONYM, "PatientID": PSEUDONYM, "PatientBirthDate": EMPTY, "PatientSex": EMPTY,
    "StudyInstanceUID": UID, "StudyDate": DATE, "StudyTime": TIME, "ReferringPhysicianName": EMPTY, "StudyID": EMPTY,
    "AccessionNumber": EMPTY,
    "Modality": KEEP, "SeriesInstanceUID": UID, "SeriesNumber": KEEP, "SeriesDate": DATE, "SeriesTime": TIME,
    "PatientPosition": KEEP,
    "FrameOfReferenceUID": UID, "PositionReferenceIndicator": EMPTY,
    "Manufacturer": KEEP,  # checked against MANUFACTURERS: a vendor name, else emptied
    "ContentDate": DATE, "ContentTime": TIME,
    "ImageType": KEEP, "BurnedInAnnotation": KEEP, "LossyImageCompression": KEEP,
    # image pixel and plane
    "SamplesPerPixel": KEEP, "PhotometricInterpretation": KEEP, "Rows": KEEP, "Columns": KEEP,
    "BitsAllocated": KEEP, "BitsStored": KEEP, "HighBit": KEEP, "PixelRepresentation": KEEP, "PixelData": KEEP,
    "PlanarConfiguration": KEEP, "PixelSpacing": KEEP, "ImageOrientationPatient": KEEP,
    "ImagePositionPatient": KEEP, "SliceThickness": KEEP, "SpacingBetweenSlices": KEEP,
}

MR_IMAGE = {
    "AcquisitionDate": DATE, "AcquisitionTime": TIME, "AcquisitionNumber": KEEP, "SliceLocation": KEEP,
    "SmallestImagePixelValue": KEEP, "LargestImagePixelValue": KEEP, "WindowCenter": KEEP, "WindowWidth": KEEP,
    "RescaleIntercept": KEEP, "RescaleSlope": KEEP, "RescaleType": KEEP, "PresentationLUTShape": KEEP,
    "PatientOrientation": KEEP, "ImagesInAcquisition": KEEP, "SeriesDescription": EMPTY,  # replaced by the role
    "ScanningSequence": KEEP, "SequenceVariant": KEEP, "ScanOptions": KEEP, "MRAcquisitionType": KEEP,
    "RepetitionTime": KEEP, "EchoTime": KEEP, "EchoTrainLength": KEEP, "InversionTime": KEEP, "TriggerTime": KEEP,
    "NumberOfAverages": KEEP, "ImagingFrequency": KEEP, "ImagedNucleus": KEEP, "EchoNumbers": KEEP,
    "MagneticFieldStrength": KEEP, "NumberOfPhaseEncodingSteps": KEEP, "PercentSampling": KEEP,
    "PercentPhaseFieldOfView": KEEP, "PixelBandwidth": KEEP, "AcquisitionMatrix": KEEP,
    "InPlanePhaseEncodingDirection": KEEP, "FlipAngle": KEEP, "VariableFlipAngleFlag": KEEP, "SAR": KEEP,
    "dBdt": KEEP, "DiffusionBValue": KEEP, "DiffusionGradientOrientation": KEEP, "DiffusionDirectionality": KEEP,
    "ContrastBolusAgent": EMPTY,  # brand names are free text; the role (CET1) says contrast was given
    "Laterality": EMPTY,
}

# Type 2 (and 2C) attributes an exported object must hold, added empty when the source lacks them,
# so that a de-identified object is a valid one (dciodvfy) even from an incomplete source.
REQUIRED_EMPTY = {
    "image": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
              "ReferringPhysicianName", "StudyID", "AccessionNumber", "SeriesNumber", "Laterality", "PatientPosition",
              "PositionReferenceIndicator", "Manufacturer", "InstanceNumber", "PatientOrientation", "ScanOptions",
              "MRAcquisitionType", "EchoTime", "EchoTrainLength"),
    "segmentation": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                     "ReferringPhysicianName", "StudyID", "AccessionNumber", "PositionReferenceIndicator"),
}

SEGMENTATION = {
    "SeriesDescription": OWN, "ContentLabel": OWN, "ContentDescription": OWN, "ContentCreatorName": OWN,
    "ManufacturerModelName": OWN, "DeviceSerialNumber": OWN, "SoftwareVersions": OWN,
    "SegmentationType": KEEP, "SegmentationFractionalType": KEEP, "MaximumFractionalValue": KEEP,
    "SegmentsOverlap": KEEP, "NumberOfFrames": KEEP, "PresentationLUTShape": KEEP, "SpatialLocationsPreserved": KEEP,
    "DimensionOrganizationType": KEEP,
    "SegmentSequence": SEQUENCE, "SegmentNumber": KEEP, "SegmentLabel": OWN, "SegmentDescription": OWN,
    "SegmentAlgorithmType": KEEP, "SegmentAlgorithmName": OWN, "RecommendedDisplayCIELabValue": KEEP,
    "SegmentedPropertyCategoryCodeSequence": SEQUENCE, "SegmentedPropertyTypeCodeSequence": SEQUENCE,
    "AnatomicRegionSequence": SEQUENCE, "SegmentationAlgorithmIdentificationSequence": SEQUENCE,
    "AlgorithmFamilyCodeSequence": SEQUENCE, "AlgorithmName": OWN, "AlgorithmVersion": OWN, "AlgorithmSource": OWN,
    "CodeValue": OWN, "CodingSchemeDesignator": OWN, "CodeMeaning": OWN, "CodingSchemeVersion": OWN,
    "SharedFunctionalGroupsSequence": SEQUENCE, "PerFrameFunctionalGroupsSequence": SEQUENCE,
    "PixelMeasuresSequence": SEQUENCE, "PlaneOrientationSequence": SEQUENCE, "PlanePositionSequence": SEQUENCE,
    "FrameContentSequence": SEQUENCE, "DimensionIndexValues": KEEP, "StackID": KEEP, "InStackPositionNumber": KEEP,
    "DerivationImageSequence": SEQUENCE, "SourceImageSequence": SEQUENCE, "DerivationCodeSequence": SEQUENCE,
    "PurposeOfReferenceCodeSequence": SEQUENCE, "ReferencedSOPClassUID": KEEP, "ReferencedSOPInstanceUID": UID,
    "ReferencedFrameNumber": KEEP, "SegmentIdentificationSequence": SEQUENCE, "ReferencedSegmentNumber": KEEP,
    "DimensionOrganizationSequence": SEQUENCE, "DimensionOrganizationUID": UID,
    "DimensionIndexSequence": SEQUENCE, "DimensionIndexPointer": KEEP, "FunctionalGroupPointer": KEEP,
    "DimensionDescriptionLabel": OWN,
    "ReferencedSeriesSequence": SEQUENCE, "ReferencedInstanceSequence": SEQUENCE,
}

# Code strings kept only with these values (anything else is dropped; a required one left empty).
TERMS: dict[str, set[str]] = {
    "ImageType": {"ORIGINAL", "DERIVED", "PRIMARY", "SECONDARY", "M", "P", "R", "I", "MAGNITUDE", "PHASE", "REAL",
                  "IMAGINARY", "ND", "NORM", "DIS2D", "DIS3D", "DIFFUSION", "ADC", "TRACEW", "TRACE", "MPR", "MIP",
                  "OTHER", "FMRI", "T2", "T1", "PD", "MOSAIC", "NONE", "PROJECTION IMAGE", "VOLUME"},
    "Modality": {"MR", "SEG"},
    "PhotometricInterpretation": {"MONOCHROME1", "MONOCHROME2"},
    "ScanningSequence": {"SE", "IR", "GR", "EP", "RM"},
    "SequenceVariant": {"SK", "MTC", "SS", "TRSS", "SP", "MP", "OSP", "NONE"},
    "ScanOptions": {"PER", "RG", "CG", "PPG", "FC", "PFF", "PFP", "SP", "FS", "IR", "SAT", "SFS", "FAT_SAT"},
    "MRAcquisitionType": {"2D", "3D"},
    "PatientPosition": {"HFP", "HFS", "HFDR", "HFDL", "FFDR", "FFDL", "FFP", "FFS", "LFP", "LFS", "RFP", "RFS",
                        "AFDR", "AFDL", "PFDR", "PFDL"},
    "PatientOrientation": {"L", "R", "A", "P", "H", "F", "LA", "LP", "RA", "RP", "LH", "LF", "RH", "RF", "AH", "AF",
                           "PH", "PF", "HL", "HR", "FL", "FR", "AL", "AR", "PL", "PR", "HA", "HP", "FA", "FP"},
    "InPlanePhaseEncodingDirection": {"ROW", "COL", "COLUMN", "OTHER"},
    "VariableFlipAngleFlag": {"Y", "N"},
    "DiffusionDirectionality": {"DIRECTIONAL", "BMATRIX", "ISOTROPIC", "NONE"},
    "BurnedInAnnotation": {"YES", "NO"},
    "LossyImageCompression": {"00", "01"},
    "PresentationLUTShape": {"IDENTITY", "INVERSE"},
    "RescaleType": {"US", "OD", "HU", "MGML", "Z_EFF", "ED", "EDW", "HU_MOD", "PCT"},
    "SegmentationType": {"BINARY", "FRACTIONAL", "LABELMAP"},
    "SegmentationFractionalType": {"PROBABILITY", "OCCUPANCY"},
    "SegmentsOverlap": {"YES", "UNDEFINED", "NO"},
    "SegmentAlgorithmType": {"AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"},
    "SpatialLocationsPreserved": {"YES", "NO", "REORIENTED_ONLY"},
    "DimensionOrganizationType": {"3D", "3D_TEMPORAL", "TILED_FULL", "TILED_SPARSE"},
    "PatientIdentityRemoved": {"YES"},
    "LongitudinalTemporalInformationModified": {"MODIFIED", "REMOVED", "UNMODIFIED"},
    "ImagedNucleus": {"1H", "3HE", "13C", "19F", "23NA", "31P", "129XE"},
}

# Manufacturer (a type 2 attribute of the MR image) is kept when it is one of these vendors' names.
MANUFACTURERS = {"SIEMENS", "SIEMENS HEALTHINEERS", "GE MEDICAL SYSTEMS", "GE HEALTHCARE", "PHILIPS",
                 "PHILIPS MEDICAL SYSTEMS", "PHILIPS HEALTHCARE", "TOSHIBA", "CANON MEDICAL SYSTEMS", "HITACHI",
                 "FUJIFILM", "UIH", "UNITED IMAGING HEALTHCARE", "ESAOTE", "NEUSOFT", "CERVICALAI"}

# Character sets a kept SpecificCharacterSet may name.
CHARACTER_SETS = {"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 144", "ISO_IR 127",
                  "ISO_IR 126", "ISO_IR 138", "ISO_IR 148", "ISO_IR 192", "GB18030", "GBK", "ISO 2022 IR 6",
                  "ISO 2022 IR 100", "ISO 2022 IR 87", "ISO 2022 IR 13", "ISO 2022 IR 149", "ISO 2022 IR 58"}


KINDS = ("image", "segmentation")


def whitelist(kind: str) -> dict[str, str]:
    """keyword -> action for an object of `kind` ("image": the MR source images; "segmentation": our SEG).

    The de-identification record (PatientIdentityRemoved, DeidentificationMethod, ...) is not listed:
    the de-identifier writes it afresh after cleaning, so nothing of an earlier one survives."""
    if kind not in KINDS:
        raise ValueError(f"unknown object kind {kind!r}")
    table = dict(COMMON)
    table.update(MR_IMAGE if kind == "image" else SEGMENTATION)
    return table
