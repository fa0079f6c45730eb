"""DICOM folders: find the files, group them into series and volumes, build 3D images.

A folder is scanned at any depth and file names are ignored: a file is DICOM when it says so
(the `DICM` marker, or a raw data set starting with a DICOM group). Every 2D image (a
single-frame file, or one frame of an enhanced multi-frame file) becomes a `DicomFrame` that
carries what grouping and geometry need. Frames are grouped

    SeriesInstanceUID -> same plane geometry (orientation, matrix, pixel spacing)
                      -> volumes (frames that share slice positions are split, first by b-value,
                         then by gradient direction, temporal position, echo, ...)

and each volume is checked before it may become an image: slices sorted along the slice normal
(from ImagePositionPatient and ImageOrientationPatient, never from file names or instance
numbers), uniform spacing (a missing or duplicated slice is reported, never interpolated),
slices stacked along the normal. The image is built with numpy from the sorted frames with the
rescale slope/intercept applied, and its origin/spacing/direction come from the tags.

Nothing here decides what a series *is* (T2W, DWI, ...): that is `study.recognition`.

The modules, importing one way: `tags` (header values) <- `frames` (DicomFrame, SeriesHeader, scanning)
<- `volumes` (DicomVolume, DicomSeries, grouping, `load_dicom_series`). Import from them; this file
re-exports nothing.
"""
