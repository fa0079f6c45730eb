"""The tumour's coded terminology, defined once for every place that labels the segment.

SNOMED CT codes (DICOM CID 7150 category, CID 7151 property type, CID 4031 anatomic region):

    property category  SCT 49755003  Morphologically Altered Structure
    property type      SCT 86049000  Neoplasm, Primary
    anatomic region    SCT 71252005  Cervix uteri

Used by the DICOM SEG (`export.dicom_seg`), the `.seg.nrrd` export (`export.seg_nrrd`) and the
Slicer segmentation nodes (`CervicalAIHubLib.segmentation`), so a tumour reads the same in
Slicer, in the exported files and in a PACS. Plain data: no Slicer, highdicom or pydicom import.
"""

from __future__ import annotations

from typing import NamedTuple


class Code(NamedTuple):
    """A coded concept in DICOM's order (code value, coding scheme designator, code meaning)."""

    value: str
    scheme: str
    meaning: str

    def slicer(self) -> str:
        """As Slicer's terminology entries write a code: scheme^value^meaning."""
        return f"{self.scheme}^{self.value}^{self.meaning}"


CATEGORY = Code("49755003", "SCT", "Morphologically Altered Structure")
PROPERTY_TYPE = Code("86049000", "SCT", "Neoplasm, Primary")
ANATOMIC_REGION = Code("71252005", "SCT", "Cervix uteri")

# Slicer's serialised terminology entry: context~category~type~type modifier~region context~region~region
# modifier (vtkSlicerTerminologiesModuleLogic.SerializeTerminologyEntry writes the same string).
TERMINOLOGY_CONTEXT = "Segmentation category and type - DICOM master list"
REGION_CONTEXT = "Anatomic codes - DICOM master list"


def slicer_terminology_entry(category: Code = CATEGORY, property_type: Code = PROPERTY_TYPE,
                             region: Code = ANATOMIC_REGION) -> str:
    """Slicer's terminology entry string for a segment (no type or region modifier)."""
    return "~".join([TERMINOLOGY_CONTEXT, category.slicer(), property_type.slicer(), "^^", REGION_CONTEXT,
                     region.slicer(), "^^"])


TUMOUR_TERMINOLOGY = slicer_terminology_entry()
