"""Read the few tags the scan needs from an ordinary DICOM file without pydicom, ~10x faster.

The scan of a dropped folder reads one header per file. pydicom parses every element into a DataElement
and converts values on access (~0.7 ms a CT slice here, most of a 300-file scan). This reader walks the
elements of a Part 10 file in Explicit or Implicit VR Little Endian (and the encapsulated syntaxes, which
are Explicit VR Little Endian) with ``struct.unpack_from``, keeps only the values of :data:`WANTED`, and
stops at Pixel Data, recording where its value starts, as the pydicom path does.

Anything it was not written for makes it return None, and the file is read by pydicom as before: no
preamble, another transfer syntax (deflate, big endian), an enhanced multi-frame file (functional
groups), a DICOMDIR, a character set other than the default, Latin-1 or UTF-8, a value that does not look
as the standard says (an IS that is not an integer, several values where one is expected), an
undefined-length UN element, elements out of order, sequences nested deeper than :data:`MAX_DEPTH`. The
values it does return are those pydicom returns, as plain ``str`` / ``list[str]`` / ``int`` (checked
against pydicom on every real test file, and on the fuzzer's mutations of them).
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

#: What the scan reads: tag -> (keyword, VR, many values allowed).
WANTED: dict[int, tuple[str, str, bool]] = {
    0x00080005: ("SpecificCharacterSet", "CS", True),
    0x00080016: ("SOPClassUID", "UI", False),
    0x00080018: ("SOPInstanceUID", "UI", False),
    0x00080020: ("StudyDate", "DA", False),
    0x00080060: ("Modality", "CS", False),
    0x00080080: ("InstitutionName", "LO", False),
    0x00081030: ("StudyDescription", "LO", False),
    0x0008103E: ("SeriesDescription", "LO", False),
    0x00100010: ("PatientName", "PN", False),
    0x00100020: ("PatientID", "LO", False),
    0x00100030: ("PatientBirthDate", "DA", False),
    0x00100040: ("PatientSex", "CS", False),
    0x00180050: ("SliceThickness", "DS", False),
    0x00180086: ("EchoNumbers", "IS", True),
    0x00181164: ("ImagerPixelSpacing", "DS", True),
    0x0020000D: ("StudyInstanceUID", "UI", False),
    0x0020000E: ("SeriesInstanceUID", "UI", False),
    0x00200011: ("SeriesNumber", "IS", False),
    0x00200013: ("InstanceNumber", "IS", False),
    0x00200032: ("ImagePositionPatient", "DS", True),
    0x00200037: ("ImageOrientationPatient", "DS", True),
    0x00200052: ("FrameOfReferenceUID", "UI", False),
    0x00200100: ("TemporalPositionIdentifier", "IS", False),
    0x00280002: ("SamplesPerPixel", "US", False),
    0x00280004: ("PhotometricInterpretation", "CS", False),
    0x00280006: ("PlanarConfiguration", "US", False),
    0x00280008: ("NumberOfFrames", "IS", False),
    0x00280010: ("Rows", "US", False),
    0x00280011: ("Columns", "US", False),
    0x00280030: ("PixelSpacing", "DS", True),
    0x00280100: ("BitsAllocated", "US", False),
    0x00280101: ("BitsStored", "US", False),
    0x00280103: ("PixelRepresentation", "US", False),
    0x00281050: ("WindowCenter", "DS", True),
    0x00281051: ("WindowWidth", "DS", True),
    0x00281052: ("RescaleIntercept", "DS", False),
    0x00281053: ("RescaleSlope", "DS", False),
    0x00281054: ("RescaleType", "LO", False),
}
#: Elements whose presence means "not an ordinary image file": pydicom reads those (DICOMDIR records, the
#: functional groups of enhanced multi-frame images, float pixel data).
REFUSED = frozenset({0x00041220, 0x52009229, 0x52009230, 0x7FE00008, 0x7FE00009})

#: Transfer syntaxes read here: explicit and implicit VR little endian, and the encapsulated ones (explicit
#: VR little endian too). Deflate and big endian go to pydicom.
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
ENCAPSULATED_PREFIXES = ("1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.8.")
#: Character sets whose text this reader decodes as pydicom does (others: pydicom).
CHARSETS = {"": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}

MAX_DEPTH = 16
#: Bytes read at a time; a CT header fits the first read.
CHUNK = 16384
#: A header longer than this (before Pixel Data) is left to pydicom.
MAX_HEADER = 4 * 1024 * 1024

_PIXEL_DATA = 0x7FE00010
_WANT, _REFUSE, _PIXELS = 0, 1, 2
#: The tags the walk acts on: kept, refused, or Pixel Data (one dict lookup per element).
_SPECIAL = {**{t: _WANT for t in WANTED}, **{t: _REFUSE for t in REFUSED}, _PIXEL_DATA: _PIXELS}
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_TEXT_VRS = frozenset({"LO", "PN"})  # decoded with the file's character set
_u16 = struct.Struct("<H")
_u32 = struct.Struct("<I")
_tag_len = struct.Struct("<HHI")
_explicit = struct.Struct("<HH2sH")


class Unusual(Exception):
    """Not a file this reader handles: pydicom reads it."""


class QuickDataset(dict):
    """The values read, by keyword (what ``Dataset.get`` would return), and the file meta values."""

    def __init__(self, values: dict[str, Any], file_meta: dict[str, str]) -> None:
        super().__init__(values)
        self.file_meta = file_meta


class _Reader:
    """The file's bytes from offset 0, read in :data:`CHUNK` steps as the walk needs them."""

    def __init__(self, fp: BinaryIO, size: int) -> None:
        fp.seek(0)
        self.fp, self.size = fp, size
        self.buf = fp.read(CHUNK)

    def need(self, end: int) -> None:
        """Make sure bytes up to ``end`` are in the buffer (Unusual past the end of the file or the cap)."""
        if end <= len(self.buf):
            return
        if end > self.size or end > MAX_HEADER:
            raise Unusual("past the end")
        more = self.fp.read(max(CHUNK, end - len(self.buf)))
        self.buf += more
        if end > len(self.buf):
            raise Unusual("short read")


def quick_read(fp: BinaryIO, size: int) -> tuple[QuickDataset, bool, int | None, int | None] | None:
    """``(values, has pixel data, pixel value offset, pixel value length)``, or None: pydicom reads it.

    ``fp`` is the open file (moved); ``size`` its size in bytes.
    """
    try:
        return _quick_read(_Reader(fp, size))
    except (Unusual, struct.error, UnicodeDecodeError):
        return None


def _quick_read(r: _Reader) -> tuple[QuickDataset, bool, int | None, int | None]:
    r.need(144)
    if r.buf[128:132] != b"DICM":
        raise Unusual("no preamble")
    meta, pos = _file_meta(r, 132)
    syntax = meta.get("TransferSyntaxUID", "")
    if syntax == IMPLICIT_LE:
        explicit = False
    elif syntax == EXPLICIT_LE or syntax.startswith(ENCAPSULATED_PREFIXES):
        explicit = True
    else:
        raise Unusual("transfer syntax")
    if meta.get("MediaStorageSOPClassUID") == "1.2.840.10008.1.3.10":
        raise Unusual("DICOMDIR")
    r.need(pos + 8)
    if _looks_explicit(r.buf, pos) != explicit:
        raise Unusual("the data is not in its transfer syntax's VR encoding")  # pydicom detects which it is
    raw: dict[int, tuple[str, bytes]] = {}
    pixel = _walk(r, pos, explicit, raw)
    charset = _charset(raw)
    values = {keyword: _value(raw[tag], vr, many, charset) for tag, (keyword, vr, many) in WANTED.items()
              if tag in raw}
    if pixel is None:  # not an image, or a damaged one: pydicom's reading gives the reason
        raise Unusual("no pixel data found")
    return QuickDataset(values, meta), True, pixel[0], pixel[1]


def _looks_explicit(buf: bytes, pos: int) -> bool:
    """Whether the first dataset element carries a VR (two capital letters after its tag), as pydicom checks
    when a file's data disagree with its transfer syntax."""
    vr = buf[pos + 4:pos + 6]
    return len(vr) == 2 and 65 <= vr[0] <= 90 and 65 <= vr[1] <= 90


def _file_meta(r: _Reader, pos: int) -> tuple[dict[str, str], int]:
    """Group 0002 (always explicit VR little endian, PS3.10 7.1): the syntax and the SOP class."""
    meta: dict[str, str] = {}
    while True:
        r.need(pos + 8)
        group, element, vr, short = _explicit.unpack_from(r.buf, pos)
        if group != 0x0002:
            return meta, pos
        if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
            raise Unusual("not a VR in the file meta")
        if vr in _LONG_VRS:
            r.need(pos + 12)
            length, start = _u32.unpack_from(r.buf, pos + 8)[0], pos + 12
        else:
            length, start = short, pos + 8
        if length == _UNDEFINED:
            raise Unusual("undefined length in the file meta")
        r.need(start + length)
        if element in (0x0002, 0x0010):
            text = r.buf[start:start + length].decode("ascii").rstrip(" \x00")
            meta["MediaStorageSOPClassUID" if element == 0x0002 else "TransferSyntaxUID"] = text
        pos = start + length


def _element(r: _Reader, pos: int, explicit: bool) -> tuple[int, str, int, int]:
    """(tag, VR or "", value length, value start) of the element at ``pos``."""
    r.need(pos + 8)
    if not explicit:
        group, element, length = _tag_len.unpack_from(r.buf, pos)
        return group << 16 | element, "", length, pos + 8
    group, element, vr, short = _explicit.unpack_from(r.buf, pos)
    tag = group << 16 | element
    if group == 0xFFFE:  # item and delimiters have no VR
        return tag, "", _u32.unpack_from(r.buf, pos + 4)[0], pos + 8
    if vr in _LONG_VRS:
        r.need(pos + 12)
        return tag, vr.decode("latin_1"), _u32.unpack_from(r.buf, pos + 8)[0], pos + 12
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise Unusual("not a VR")
    return tag, vr.decode("latin_1"), short, pos + 8


def _walk(r: _Reader, pos: int, explicit: bool, raw: dict[int, tuple[str, bytes]]) -> tuple[int, int] | None:
    """Walk the top-level elements up to Pixel Data, keeping the wanted ones; Pixel Data's (offset, length).

    The hot loop of the scan (~60 elements a CT header): one ``unpack_from`` per element on the bytes read
    so far, and a dict lookup of the few tags that matter; only an element beyond the bytes read asks
    :meth:`_Reader.need` for more.
    """
    last = -1
    buf, n, size = r.buf, len(r.buf), r.size
    unpack_explicit, unpack_implicit, unpack_u32 = _explicit.unpack_from, _tag_len.unpack_from, _u32.unpack_from
    special, long_vrs = _SPECIAL, _LONG_VRS
    while pos < size:
        if pos + 12 > n:
            r.need(min(pos + 12, size))
            buf, n = r.buf, len(r.buf)
        if explicit:
            group, element, vr, length = unpack_explicit(buf, pos)
            if vr in long_vrs:
                length, start = unpack_u32(buf, pos + 8)[0], pos + 12
            elif 65 <= vr[0] <= 90 and 65 <= vr[1] <= 90 and group != 0xFFFE:
                start = pos + 8
            else:
                raise Unusual("not a VR")
        else:
            group, element, length = unpack_implicit(buf, pos)
            vr, start = b"", pos + 8
        tag = group << 16 | element
        if tag <= last:
            raise Unusual("elements out of order")
        last = tag
        kind = special.get(tag)
        if kind is not None:
            if kind == _REFUSE:
                raise Unusual("enhanced, DICOMDIR or float pixels")
            if kind == _PIXELS:
                return start, length
        elif tag > _PIXEL_DATA:
            return None
        if length == _UNDEFINED:
            if vr not in (b"SQ", b""):
                raise Unusual("undefined length outside a sequence")
            pos = _skip_sequence(r, start, explicit, 1)
            buf, n = r.buf, len(r.buf)
            continue
        pos = start + length
        if kind is not None:  # a wanted element
            if pos > n:
                r.need(pos)
                buf, n = r.buf, len(r.buf)
            raw[tag] = (vr.decode("latin_1"), buf[start:pos])
    return None


def _skip_sequence(r: _Reader, pos: int, explicit: bool, depth: int) -> int:
    """Skip the items of an undefined-length sequence starting at ``pos``; the position after its end."""
    if depth > MAX_DEPTH:
        raise Unusual("nested too deeply")
    while True:
        r.need(pos + 8)
        group, element, length = _tag_len.unpack_from(r.buf, pos)
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            return pos + 8
        if tag != _ITEM:
            raise Unusual("not an item")
        pos += 8
        if length != _UNDEFINED:
            pos += length
            continue
        while True:  # an undefined-length item: its elements up to the item delimiter
            tag, vr, length, start = _element(r, pos, explicit)
            if tag == _ITEM_END:
                pos = start
                break
            if length == _UNDEFINED:
                if vr not in ("SQ", ""):
                    raise Unusual("undefined length outside a sequence")
                pos = _skip_sequence(r, start, explicit, depth + 1)
            else:
                pos = start + length


def _charset(raw: dict[int, tuple[str, bytes]]) -> str:
    entry = raw.get(0x00080005)
    value = entry[1].decode("ascii").rstrip(" \x00") if entry is not None else ""
    parts = [p.strip() for p in value.split("\\")]
    if len(parts) > 1 or parts[0] not in CHARSETS:
        raise Unusual("character set")
    return CHARSETS[parts[0]]


def _value(entry: tuple[str, bytes], vr: str, many: bool, charset: str) -> Any:
    """The value as pydicom gives it: str, or list of str for several values; int(s) for US."""
    found_vr, data = entry
    if found_vr and found_vr != vr:
        raise Unusual("unexpected VR")
    if vr == "US":
        if len(data) == 2:
            return data[0] | data[1] << 8
        if len(data) == 0:
            return None
        if len(data) % 2 or not many:
            raise Unusual("US length")
        return [_u16.unpack_from(data, i)[0] for i in range(0, len(data), 2)]
    if vr == "PN":
        text = data.rstrip(b"\x00 ").decode(charset)
        if "\\" in text:
            raise Unusual("several names")
        return text
    if vr in _TEXT_VRS:
        text = data.decode(charset)
        if "\\" not in text:
            return text.rstrip("\x00 ")
        items = [v.rstrip("\x00 ") for v in text.split("\\")]
    else:
        text = data.decode("latin_1").rstrip(" \x00")
        if "\\" not in text:
            if vr == "IS" and text.strip() and not text.strip().lstrip("+-").isdigit():
                raise Unusual("IS not an integer")
            return text
        items = text.split("\\")
    if not many:
        raise Unusual("several values")
    if vr == "IS" and any(v.strip() and not v.strip().lstrip("+-").isdigit() for v in items):
        raise Unusual("IS not an integer")
    return items
