"""The one sanity check of image files and images, before anything uses their voxels.

ITK is lenient where a silent repair gives a wrong result: a truncated NIfTI file is read as an
image whose missing voxels are zero, NaN voxels of a NIfTI file come back as 0, a zero voxel size
becomes 1 mm, and of a qform and an sform that disagree one is used without a word. So the raw
file is checked first (`check_image_file`: header, byte count, gzip stream, NaN in float data),
then the image ITK made of it (`check_image`: geometry finite, positive and plausible, voxels
finite, one component, the expected dimension). `sequence_problem` says what makes a volume
unusable as an MR sequence (blank, a single slice); masks are checked by `io.masks`.

Every problem is an InputError naming the file and the defect, in words a site's IT reviewer
reads (docs/bad_inputs.md lists them).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from CervicalAILib.core.errors import InputError

# Plausible voxel sizes of an MR image (mm); outside them the header is wrong, not the scanner.
MIN_SPACING_MM = 0.01
MAX_SPACING_MM = 100.0
MAX_COORDINATE_MM = 100_000.0  # 100 m: an origin beyond it is a broken header
# A header announcing more voxels than this is refused before anything is allocated.
MAX_VOXELS = 2**29
# qform and sform must agree to within these (a float32 header cannot do better than ~1e-5).
AFFINE_ORIGIN_TOLERANCE_MM = 0.1
AFFINE_AXIS_TOLERANCE = 1e-3  # relative to the voxel size
CHUNK = 1 << 20

# NIfTI datatype code -> numpy dtype (the codes ITK reads)
NIFTI_DTYPES = {
    2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64, 256: np.int8,
    512: np.uint16, 768: np.uint32, 1024: np.int64, 1280: np.uint64, 32: np.complex64, 1792: np.complex128,
    128: np.uint8,  # RGB24: three bytes per voxel (itemsize handled below)
    2304: np.uint8,  # RGBA32
}
NIFTI_BYTES_PER_VOXEL = {128: 3, 2304: 4}


def _fmt(values) -> str:
    return "x".join(f"{float(v):g}" for v in values)


# --------------------------------------------------------------------------- raw NIfTI


class _NiftiHeader:
    """The fields of a NIfTI-1 or NIfTI-2 header this check needs, read as stored (nothing repaired)."""

    def __init__(self, raw: bytes, path: Path):
        if len(raw) < 348:
            raise InputError(f"not a NIfTI file: only {len(raw)} bytes, a header alone has 348", path)
        for endian in "<>":
            size = struct.unpack(endian + "i", raw[:4])[0]
            if size in (348, 540):
                break
        else:
            raise InputError("not a NIfTI file (header size field is neither 348 nor 540)", path)
        e = endian
        if size == 348:
            self.version = 1
            self.magic = raw[344:348].rstrip(b"\x00")
            self.dim = struct.unpack(e + "8h", raw[40:56])
            self.datatype, self.bitpix = struct.unpack(e + "2h", raw[70:74])
            self.pixdim = struct.unpack(e + "8f", raw[76:108])
            self.vox_offset = struct.unpack(e + "f", raw[108:112])[0]
            self.scl_slope, self.scl_inter = struct.unpack(e + "2f", raw[112:120])
            self.xyzt_units = raw[123]
            self.qform_code, self.sform_code = struct.unpack(e + "2h", raw[252:256])
            self.quatern = struct.unpack(e + "6f", raw[256:280])
            self.srow = struct.unpack(e + "12f", raw[280:328])
        else:
            if len(raw) < 540:
                raise InputError(f"not a NIfTI-2 file: only {len(raw)} bytes, its header has 540", path)
            self.version = 2
            self.magic = raw[4:12].rstrip(b"\x00")[:3]
            self.datatype, self.bitpix = struct.unpack(e + "2h", raw[12:16])
            self.dim = struct.unpack(e + "8q", raw[16:80])
            self.pixdim = struct.unpack(e + "8d", raw[104:168])
            self.vox_offset = struct.unpack(e + "q", raw[168:176])[0]
            self.scl_slope, self.scl_inter = struct.unpack(e + "2d", raw[176:192])
            self.qform_code, self.sform_code = struct.unpack(e + "2i", raw[344:352])
            self.xyzt_units = struct.unpack(e + "i", raw[500:504])[0]
            self.quatern = struct.unpack(e + "6d", raw[352:400])
            self.srow = struct.unpack(e + "12d", raw[400:496])
        self.endian = e
        self.header_size = size

    def sform(self) -> np.ndarray:
        return np.asarray(self.srow, dtype=float).reshape(3, 4)

    def qform(self) -> np.ndarray:
        """The qform affine (NIfTI method 2), computed from the stored fields as the standard says."""
        b, c, d, qx, qy, qz = (float(v) for v in self.quatern)
        a2 = 1.0 - (b * b + c * c + d * d)
        if a2 < -1e-5:
            raise ValueError(f"the qform quaternion (b={b:g}, c={c:g}, d={d:g}) is not a rotation")
        a = math.sqrt(max(a2, 0.0))
        rotation = np.array([
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ])
        qfac = -1.0 if self.pixdim[0] < 0 else 1.0
        zooms = np.array([self.pixdim[1], self.pixdim[2], self.pixdim[3] * qfac], dtype=float)
        affine = np.zeros((3, 4))
        affine[:, :3] = rotation * zooms
        affine[:, 3] = (qx, qy, qz)
        return affine


def _open_stream(path: Path, compressed: bool):
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def check_nifti_file(path: str | Path, values: bool = True) -> None:
    """Header, geometry fields, byte count and (with `values`) float voxels of a .nii/.nii.gz file, as stored."""
    path = Path(path)
    compressed = path.name.lower().endswith(".gz")
    try:
        with _open_stream(path, compressed) as stream:
            raw = stream.read(540)
            header = _NiftiHeader(raw, path)
            _check_nifti_header(header, path)
            _check_nifti_data(header, raw, stream, path, values)
    except gzip.BadGzipFile as exc:
        if "Not a gzipped file" in str(exc):
            raise InputError("not a NIfTI image: a .nii.gz file must be gzip-compressed, this one is not (another "
                             "format, or not an image at all)", path) from exc
        raise InputError(f"the file is corrupt (its gzip stream is broken: {exc})", path) from exc
    except (EOFError, zlib.error) as exc:
        raise InputError(f"the file is truncated or corrupt (its gzip stream is broken: {exc})", path) from exc
    except OSError as exc:
        if isinstance(exc, PermissionError):
            raise
        raise InputError(f"cannot read the file ({exc.strerror or exc})", path) from exc


def _check_nifti_header(h: _NiftiHeader, path: Path) -> None:
    if h.magic not in (b"n+1", b"n+2"):
        what = "a header/image pair (.hdr/.img)" if h.magic in (b"ni1", b"ni2") else f"magic {h.magic!r}"
        raise InputError(f"not a single-file NIfTI image ({what})", path)
    ndim = int(h.dim[0])
    if not 1 <= ndim <= 7:
        raise InputError(f"NIfTI header gives {ndim} dimensions (1 to 7 possible): the header is corrupt", path)
    sizes = [int(v) for v in h.dim[1 : ndim + 1]]
    if any(n < 1 for n in sizes):
        raise InputError(f"NIfTI header gives an image size of {'x'.join(map(str, sizes))}: a size below 1", path)
    voxels = math.prod(sizes)
    if voxels > MAX_VOXELS:
        raise InputError(f"NIfTI header announces a {'x'.join(map(str, sizes))} image ({voxels:,} voxels, more than "
                         f"{MAX_VOXELS:,}): not an MR series, or a corrupt header", path)
    if h.datatype not in NIFTI_DTYPES:
        raise InputError(f"NIfTI datatype code {h.datatype} is not an image type ITK reads", path)
    spatial = [float(v) for v in h.pixdim[1 : min(ndim, 3) + 1]]
    if not all(math.isfinite(v) for v in spatial):
        raise InputError(f"NIfTI voxel size (pixdim) {_fmt(spatial)} mm is not a number", path)
    if any(v <= 0 for v in spatial):
        # ITK reads a zero or negative voxel size as 1 mm: every volume would be wrong
        raise InputError(f"NIfTI voxel size (pixdim) is {_fmt(spatial)} mm: a voxel size must be positive", path)
    to_mm = {1: 1000.0, 3: 0.001}.get(h.xyzt_units & 0x07, 1.0)  # metres, micrometres; else mm (or unknown)
    if any(v * to_mm < MIN_SPACING_MM or v * to_mm > MAX_SPACING_MM for v in spatial):
        raise InputError(f"voxel size {_fmt(spatial)} mm (NIfTI pixdim) is not plausible for MRI (each must lie between "
                         f"{MIN_SPACING_MM:g} and {MAX_SPACING_MM:g} mm): the header is wrong", path)
    # NaN means "no scaling" (nibabel writes it); an infinite factor would turn every voxel infinite
    if math.isinf(h.scl_slope) or math.isinf(h.scl_inter):
        raise InputError(f"NIfTI intensity scaling (scl_slope {h.scl_slope:g}, scl_inter {h.scl_inter:g}) is "
                         "infinite", path)
    if not math.isfinite(h.vox_offset) or h.vox_offset < h.header_size:
        raise InputError(f"NIfTI voxel data offset {h.vox_offset:g} lies inside the header: corrupt header", path)
    affines: dict[str, np.ndarray] = {}
    if h.qform_code > 0:
        try:
            affines["qform"] = h.qform()
        except ValueError as exc:
            raise InputError(f"NIfTI qform is invalid: {exc}", path) from exc
    if h.sform_code > 0:
        affines["sform"] = h.sform()
    for name, affine in affines.items():
        if not np.all(np.isfinite(affine)):
            raise InputError(f"NIfTI {name} contains NaN or infinite values", path)
        if ndim >= 3 and abs(np.linalg.det(affine[:, :3])) < 1e-9:
            raise InputError(f"NIfTI {name} is singular (a zero voxel size or a zero axis): the image cannot be "
                             "placed in space", path)
    if len(affines) == 2 and ndim >= 3:
        q, s = affines["qform"], affines["sform"]
        origin_gap = float(np.linalg.norm(q[:, 3] - s[:, 3]))
        axis_gap = float(np.max(np.linalg.norm(q[:, :3] - s[:, :3], axis=0) / np.linalg.norm(s[:, :3], axis=0)))
        if origin_gap > AFFINE_ORIGIN_TOLERANCE_MM or axis_gap > AFFINE_AXIS_TOLERANCE:
            raise InputError(
                f"NIfTI qform and sform disagree (origins {origin_gap:.2f} mm apart, axes differ by "
                f"{100 * axis_gap:.1f}%): the file places the image in two different places; fix the header "
                "(e.g. set qform_code or sform_code to 0 for the wrong one)", path)


def _check_nifti_data(h: _NiftiHeader, head: bytes, stream, path: Path, values: bool = True) -> None:
    """Count the voxel bytes (and check float voxels are finite) while streaming the file once."""
    ndim = int(h.dim[0])
    voxels = math.prod(int(v) for v in h.dim[1 : ndim + 1])
    dtype = np.dtype(NIFTI_DTYPES[h.datatype]).newbyteorder(h.endian)
    bytes_per_voxel = NIFTI_BYTES_PER_VOXEL.get(h.datatype, dtype.itemsize)
    offset = int(h.vox_offset)
    expected = voxels * bytes_per_voxel
    floating = values and dtype.kind in "fc"
    buffer = head[offset:] if len(head) > offset else b""
    skip = max(offset - len(head), 0)
    received = 0
    non_finite = 0
    carry = b""
    while True:
        if buffer:
            chunk, buffer = buffer, b""
        else:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
        if skip:
            cut = min(skip, len(chunk))
            chunk, skip = chunk[cut:], skip - cut
            if not chunk:
                continue
        useful = chunk[: max(expected - received, 0)]
        received += len(chunk)
        if floating and useful:
            data = carry + useful
            whole = len(data) - len(data) % dtype.itemsize
            non_finite += int(np.count_nonzero(~np.isfinite(np.frombuffer(data[:whole], dtype=dtype))))
            carry = data[whole:]
    if received < expected:
        raise InputError(f"the file is truncated: it holds {received:,} of the {expected:,} bytes of voxel data its "
                         f"header announces ({'x'.join(str(int(v)) for v in h.dim[1:ndim + 1])} voxels)", path)
    if non_finite:
        raise InputError(f"{non_finite:,} voxel(s) are NaN or infinite (ITK would read them as 0)", path)


# --------------------------------------------------------------------------- raw NRRD / MetaImage


def _text_header(path: Path, limit: int = 65536) -> tuple[list[str], int]:
    """Header lines of a NRRD or MetaImage file and the byte length of the header."""
    with open(path, "rb") as handle:
        data = handle.read(limit)
    lines, position = [], 0
    for raw_line in data.split(b"\n"):
        position += len(raw_line) + 1
        line = raw_line.decode("latin-1").rstrip("\r")
        if path.suffix.lower() in (".nrrd", ".nhdr") and not line.strip():
            return lines, position
        lines.append(line)
        if line.split("=")[0].strip() == "ElementDataFile":
            return lines, position
    return lines, min(position, len(data))


NRRD_TYPES = {
    "signed char": 1, "int8": 1, "int8_t": 1, "uchar": 1, "unsigned char": 1, "uint8": 1, "uint8_t": 1,
    "short": 2, "short int": 2, "signed short": 2, "signed short int": 2, "int16": 2, "int16_t": 2,
    "ushort": 2, "unsigned short": 2, "unsigned short int": 2, "uint16": 2, "uint16_t": 2,
    "int": 4, "signed int": 4, "int32": 4, "int32_t": 4, "uint": 4, "unsigned int": 4, "uint32": 4, "uint32_t": 4,
    "longlong": 8, "long long": 8, "long long int": 8, "signed long long": 8, "signed long long int": 8,
    "int64": 8, "int64_t": 8, "ulonglong": 8, "unsigned long long": 8, "unsigned long long int": 8,
    "uint64": 8, "uint64_t": 8, "float": 4, "double": 8,
}
META_TYPES = {"MET_UCHAR": 1, "MET_CHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}


def _sizes(text: str, path: Path, field: str) -> list[int]:
    try:
        sizes = [int(v) for v in text.split()]
    except ValueError:
        raise InputError(f"header field {field} ({text.strip()!r}) is not a list of whole numbers", path) from None
    if not sizes or any(n < 1 for n in sizes):
        raise InputError(f"header field {field} gives an image size of {text.strip()!r}: a size below 1", path)
    if math.prod(sizes) > MAX_VOXELS:
        raise InputError(f"header announces a {'x'.join(map(str, sizes))} image ({math.prod(sizes):,} voxels, more "
                         f"than {MAX_VOXELS:,}): not an MR series, or a corrupt header", path)
    return sizes


def _count_bytes(path: Path, start: int, encoding: str) -> int:
    """Bytes of voxel data from `start` (decompressed for gzip/zlib); InputError for a broken stream."""
    with open(path, "rb") as handle:
        handle.seek(start)
        if encoding == "raw":
            handle.seek(0, 2)
            return max(handle.tell() - start, 0)
        total = 0
        try:
            if encoding == "gzip":
                with gzip.GzipFile(fileobj=handle) as stream:
                    while chunk := stream.read(CHUNK):
                        total += len(chunk)
            else:  # zlib (MetaImage CompressedData)
                inflater = zlib.decompressobj()
                while chunk := handle.read(CHUNK):
                    total += len(inflater.decompress(chunk))
                if not inflater.eof:
                    raise InputError("the file is truncated: its compressed voxel data end early", path)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputError(f"the file is truncated or corrupt (its compressed voxel data are broken: {exc})",
                             path) from exc
        return total


def check_nrrd_file(path: str | Path) -> None:
    path = Path(path)
    lines, header_bytes = _text_header(path)
    if not lines or not lines[0].startswith("NRRD"):
        raise InputError("not a NRRD file (it does not start with NRRD000N)", path)
    fields = {}
    for line in lines[1:]:
        if line.startswith("#") or ":" not in line or ":=" in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.strip()
    if "sizes" not in fields or "type" not in fields:
        raise InputError("NRRD header lacks 'sizes' or 'type'", path)
    sizes = _sizes(fields["sizes"], path, "sizes")
    encoding = fields.get("encoding", "raw").lower()
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file:
        if data_file.startswith("LIST") or "%" in data_file:
            return  # several data files: ITK checks them
        target = (path.parent / data_file).resolve()
        if not target.is_file():
            raise InputError(f"NRRD header names the data file {data_file!r}, which does not exist", path)
        return
    size = NRRD_TYPES.get(fields["type"].lower())
    if size is None or encoding not in ("raw", "gzip", "gz"):
        return  # text, bzip2, block data: ITK reads and checks them itself
    expected = math.prod(sizes) * size
    received = _count_bytes(path, header_bytes, "gzip" if encoding in ("gzip", "gz") else "raw")
    if received < expected:
        raise InputError(f"the file is truncated: it holds {received:,} of the {expected:,} bytes of voxel data its "
                         f"header announces ({'x'.join(map(str, sizes))} voxels)", path)


def check_metaimage_file(path: str | Path) -> None:
    path = Path(path)
    lines, header_bytes = _text_header(path)
    fields = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    if "DimSize" not in fields or "ElementDataFile" not in fields:
        raise InputError("not a MetaImage file (DimSize or ElementDataFile missing)", path)
    sizes = _sizes(fields["DimSize"], path, "DimSize")
    data_file = fields["ElementDataFile"]
    if data_file.upper() == "LOCAL":
        target, start = path, header_bytes
    elif data_file.upper().startswith("LIST") or "%" in data_file:
        return
    else:
        target, start = (path.parent / data_file), 0
        if not target.is_file():
            raise InputError(f"MetaImage header names the data file {data_file!r}, which does not exist", path)
    size = META_TYPES.get(fields.get("ElementType", ""))
    if size is None:
        return
    channels = int(fields.get("ElementNumberOfChannels", "1") or 1)
    compressed = fields.get("CompressedData", "False").lower() == "true"
    expected = math.prod(sizes) * size * channels
    received = _count_bytes(target, start, "zlib" if compressed else "raw")
    if received < expected:
        raise InputError(f"the file is truncated: it holds {received:,} of the {expected:,} bytes of voxel data its "
                         f"header announces ({'x'.join(map(str, sizes))} voxels)", path)


def check_image_file(path: str | Path, values: bool = True) -> None:
    """The raw checks for the file's format (NIfTI, NRRD, MetaImage); InputError naming the file.

    values: also check that NIfTI float voxels are finite (off for checking a file just written)."""
    path = Path(path)
    name = path.name.lower()
    if path.stat().st_size == 0:
        raise InputError("the file is empty (0 bytes)", path)
    if name.endswith((".nii", ".nii.gz")):
        check_nifti_file(path, values)
    elif name.endswith((".nrrd", ".nhdr")):
        check_nrrd_file(path)
    elif name.endswith((".mha", ".mhd")):
        check_metaimage_file(path)


# --------------------------------------------------------------------------- the image ITK made


def check_geometry(image: sitk.Image, path: str | Path) -> None:
    """InputError if the image's spacing, origin or direction cannot be trusted or is implausible."""
    dimension = image.GetDimension()
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(dimension, dimension)
    if not (np.all(np.isfinite(spacing)) and np.all(np.isfinite(origin)) and np.all(np.isfinite(direction))):
        raise InputError("image geometry contains NaN or infinite values (affine/spacing/origin)", path)
    if np.any(spacing <= 0):
        raise InputError(f"voxel spacing must be positive, found {_fmt(spacing)} mm", path)
    spatial = spacing[:3]
    if np.any(spatial < MIN_SPACING_MM) or np.any(spatial > MAX_SPACING_MM):
        raise InputError(f"voxel size {_fmt(spatial)} mm is not plausible for MRI (each must lie between "
                         f"{MIN_SPACING_MM:g} and {MAX_SPACING_MM:g} mm): the header is wrong", path)
    if np.any(np.abs(origin) > MAX_COORDINATE_MM):
        raise InputError(f"image origin {_fmt(origin.round(1))} mm lies more than {MAX_COORDINATE_MM / 1000:g} m from "
                         "the scanner centre: the header is wrong", path)
    if abs(np.linalg.det(direction)) < 1e-3:
        raise InputError("image direction matrix is singular (zero column in the affine)", path)


def check_image(image: sitk.Image, path: str | Path, dimension: int | None = 3, vector: bool = False) -> None:
    """Geometry, dimension, components and finite voxels of an image read from `path`."""
    if dimension is not None and image.GetDimension() != dimension:
        size = "x".join(str(n) for n in image.GetSize())
        raise InputError(f"is a {image.GetDimension()}D image ({size}); a {dimension}D volume is needed"
                         + (" (give one volume of a 4D series, e.g. the highest b-value)" if image.GetDimension() == 4
                            else ""), path)
    if not vector and image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"is a colour/vector image ({image.GetNumberOfComponentsPerPixel()} components per voxel), "
                         "not a greyscale MR image or label mask", path)
    check_geometry(image, path)
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise InputError(f"{bad:,} voxel(s) are NaN or infinite", path)


def sequence_problem(image: sitk.Image) -> str | None:
    """Why a volume cannot be an MR sequence (blank, a single slice), or None."""
    array = sitk.GetArrayViewFromImage(image)
    if array.size == 0:
        return "the image has no voxels"
    if not np.any(array):
        return "the image is blank (every voxel is 0)"
    if min(image.GetSize()[:3]) < 2:
        return f"the image is a single slice ({'x'.join(str(n) for n in image.GetSize())}), not a 3D volume"
    return None
