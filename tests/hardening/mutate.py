"""Structure-aware mutations of real DICOM files, drawn by hypothesis.

A mutation is a list of small operations applied to the bytes of one seed file (a real file from
pydicom's test files, pydicom-data or the demo CT). The operations know where the elements are (a tiny
element walker for little- and big-endian, explicit- and implicit-VR encodings, into sequences), so they
hit what a hostile file would: element lengths, VRs, the transfer syntax UID, the image-size tags, pixel
data length, encapsulated fragments and their offset table, deeply nested or unterminated sequences,
deflate bombs, truncation and plain byte noise. Hypothesis draws the operations (deterministically when
derandomised) and shrinks a failing list to a minimal one.
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

#: VRs whose explicit-VR header has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2).
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
       b"OL", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"TM", b"UC", b"UI", b"UL", b"UN", b"US", b"UT",
       b"\x00\x00", b"zz"]

SYNTAXES = [
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.100", "1.2.3.4", "", "\x00" * 8,
]

#: Image Pixel module tags (PS3.3 C.7.6.3) and others the loader sizes or sorts by.
IMAGE_TAGS = {
    "Rows": 0x00280010, "Columns": 0x00280011, "BitsAllocated": 0x00280100, "BitsStored": 0x00280101,
    "HighBit": 0x00280102, "PixelRepresentation": 0x00280103, "SamplesPerPixel": 0x00280002,
    "PlanarConfiguration": 0x00280006, "NumberOfFrames": 0x00280008, "PhotometricInterpretation": 0x00280004,
    "ImagePositionPatient": 0x00200032, "ImageOrientationPatient": 0x00200037, "PixelSpacing": 0x00280030,
    "RescaleSlope": 0x00281053, "RescaleIntercept": 0x00281052, "WindowCenter": 0x00281050,
    "WindowWidth": 0x00281051, "SeriesInstanceUID": 0x0020000E, "TransferSyntaxUID": 0x00020010,
}
US_VALUES = [0, 1, 2, 3, 4, 7, 8, 12, 15, 16, 17, 24, 31, 32, 33, 64, 255, 256, 4096, 32767, 32768, 65535]
TEXT_VALUES = [b"0", b"1", b"-1", b"3", b"65535", b"100000", b"2147483648", b"99999999999999999999", b"NaN",
               b"inf", b"-inf", b"1e308", b"\\\\\\", b"", b"RGB", b"YBR_FULL_422", b"PALETTE COLOR",
               b"MONOCHROME1", b"1\\0\\0\\0\\1\\0", b"0\\0\\0\\0\\0\\0", b"abc"]
LENGTHS = [0, 1, 2, 3, 4, 7, 8, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF]
PIXEL_TAG = 0x7FE00010
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


@dataclass(frozen=True)
class Element:
    """Where one element sits in a file (offsets into the file's bytes)."""

    tag: int
    vr: bytes | None  # None for implicit VR
    start: int  # first byte of the tag
    length_at: int  # offset of the length field
    length_size: int  # 2 or 4
    value_at: int
    length: int  # 0xFFFFFFFF for undefined length
    little: bool
    depth: int


def _syntax_of(data: bytes) -> tuple[bool, bool, int]:
    """(implicit VR, little endian, dataset start) from the file meta, PS3.10 7.1."""
    if data[128:132] != b"DICM":
        explicit = data[4:6].isalpha() if len(data) >= 6 else False
        return not explicit, True, 0
    pos, syntax = 132, "1.2.840.10008.1.2.1"
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 2:
            break
        vr = data[pos + 4:pos + 6]
        if vr in LONG_VRS:
            length, value = struct.unpack_from("<I", data, pos + 8)[0], pos + 12
        else:
            length, value = struct.unpack_from("<H", data, pos + 6)[0], pos + 8
        if elem == 0x0010:
            syntax = data[value:value + length].rstrip(b"\x00 ").decode("ascii", "replace")
        pos = value + length
    implicit = syntax == "1.2.840.10008.1.2"
    little = syntax != "1.2.840.10008.1.2.2"
    return implicit, little, pos


def walk(data: bytes, limit: int = 20000) -> list[Element]:
    """Every element of the file (file meta and dataset, into sequences), as far as it parses."""
    out: list[Element] = []
    implicit, little, ds_start = _syntax_of(data)
    if data[128:132] == b"DICM":
        _walk_range(data, 132, ds_start, False, True, 0, out, limit)
    if data[ds_start - 4:ds_start] != b"" and implicit is not None:
        _walk_range(data, ds_start, len(data), implicit, little, 0, out, limit)
    return out


def _walk_range(data: bytes, pos: int, end: int, implicit: bool, little: bool, depth: int,
                out: list[Element], limit: int) -> int:
    e = "<" if little else ">"
    end = min(end, len(data))
    if depth > 30:
        return end  # deeper nesting is not walked (the mutations never need it)
    while pos + 8 <= end and len(out) < limit:
        group, elem = struct.unpack_from(f"{e}HH", data, pos)
        tag = group << 16 | elem
        if tag in (ITEM, ITEM_END, SEQ_END):
            length = struct.unpack_from(f"{e}I", data, pos + 4)[0]
            out.append(Element(tag, None, pos, pos + 4, 4, pos + 8, length, little, depth))
            pos += 8
            if tag == SEQ_END or tag == ITEM_END:
                return pos
            if length != 0xFFFFFFFF:
                if length and pos + length <= end and depth < 30:
                    _walk_range(data, pos, pos + length, implicit, little, depth + 1, out, limit)
                pos += length
            continue
        vr: bytes | None = None
        if implicit or group == 0xFFFE:
            length_at, size = pos + 4, 4
        else:
            vr = data[pos + 4:pos + 6]
            if vr in LONG_VRS:
                length_at, size = pos + 8, 4
            else:
                length_at, size = pos + 6, 2
        if length_at + size > end:
            return end
        length = struct.unpack_from(f"{e}{'I' if size == 4 else 'H'}", data, length_at)[0]
        value_at = length_at + size
        out.append(Element(tag, vr, pos, length_at, size, value_at, length, little, depth))
        is_sq = vr == b"SQ" or (tag == PIXEL_TAG and length == 0xFFFFFFFF)
        if length == 0xFFFFFFFF or (is_sq and depth < 30):
            if length == 0xFFFFFFFF or vr == b"SQ":
                stop = end if length == 0xFFFFFFFF else min(end, value_at + length)
                after = _walk_range(data, value_at, stop, implicit, little, depth + 1, out, limit)
                pos = after if length == 0xFFFFFFFF else value_at + length
                continue
        pos = value_at + length
    return pos


# --- operations ---------------------------------------------------------------------------------------


def _pack_length(el: Element, value: int) -> bytes:
    e = "<" if el.little else ">"
    return struct.pack(
        f"{e}{'I' if el.length_size == 4 else 'H'}", value & (0xFFFFFFFF if el.length_size == 4 else 0xFFFF)
    )


def _replace_value(data: bytes, el: Element, value: bytes) -> bytes:
    """Replace one element's value and fix its length field (only for defined-length elements)."""
    if el.length == 0xFFFFFFFF:
        return data
    if len(value) % 2:
        value += b" " if el.vr not in (b"UI", b"OB", b"US") else b"\x00"
    if el.length_size == 2 and len(value) > 0xFFFF:
        value = value[:0xFFFE]
    head = data[:el.length_at] + _pack_length(el, len(value))
    return head + value + data[el.value_at + el.length:]


def op_bytes(data: bytes, at: int, values: list[int]) -> bytes:
    """Overwrite bytes at a position (wrapped into the file)."""
    if not data:
        return data
    at %= len(data)
    buf = bytearray(data)
    for i, v in enumerate(values):
        if at + i < len(buf):
            buf[at + i] = v
    return bytes(buf)


def op_header_bytes(data: bytes, at: int, values: list[int]) -> bytes:
    """Overwrite bytes in the first kilobyte past the preamble, where the file meta and the header sit."""
    return op_bytes(data, 128 + at % 1024, values)


def op_length(data: bytes, which: int, length: int, relative: bool) -> bytes:
    """Set an element's length field (absolutely, or off by a small amount)."""
    els = walk(data)
    if not els:
        return data
    el = els[which % len(els)]
    new = (el.length + length) if relative else length
    return data[:el.length_at] + _pack_length(el, new) + data[el.length_at + el.length_size:]


def op_vr(data: bytes, which: int, vr: bytes) -> bytes:
    """Change an explicit VR (the length field layout then no longer matches, as in a forged file)."""
    els = [el for el in walk(data) if el.vr is not None]
    if not els:
        return data
    el = els[which % len(els)]
    return data[:el.start + 4] + vr + data[el.start + 6:]


def op_tag_value(data: bytes, name: str, us: int | None, text: bytes) -> bytes:
    """Set an image-size or geometry tag to a hostile value (binary US or text, by its VR)."""
    tag = IMAGE_TAGS[name]
    for el in walk(data):
        if el.tag == tag and el.depth == 0:
            binary = (el.vr == b"US") or (el.vr is None and name in (
                "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                "SamplesPerPixel", "PlanarConfiguration"))
            if binary and us is not None:
                e = "<" if el.little else ">"
                return _replace_value(data, el, struct.pack(f"{e}H", us))
            return _replace_value(data, el, text)
    return data


def op_syntax(data: bytes, syntax: str) -> bytes:
    """Claim another transfer syntax than the one the dataset is encoded in."""
    for el in walk(data):
        if el.tag == 0x00020010:
            return _replace_value(data, el, syntax.encode("ascii"))
    return data


def op_truncate(data: bytes, keep_per_mille: int) -> bytes:
    """Cut the file short (a partial copy, an interrupted download)."""
    return data[: len(data) * keep_per_mille // 1000]


def op_append(data: bytes, junk: bytes) -> bytes:
    return data + junk


def op_pixel_length(data: bytes, length: int) -> bytes:
    """Set the Pixel Data length to a hostile value."""
    for el in walk(data):
        if el.tag == PIXEL_TAG and el.depth == 0:
            return data[:el.length_at] + _pack_length(el, length) + data[el.length_at + el.length_size:]
    return data


def op_fragment(data: bytes, which: int, length: int) -> bytes:
    """Corrupt an encapsulated fragment's (or the basic offset table's) item length."""
    items, inside = [], False
    for el in walk(data):
        if el.tag == PIXEL_TAG and el.length == 0xFFFFFFFF:
            inside = True
        elif inside and el.tag == ITEM:
            items.append(el)
    if not items:
        return data
    el = items[which % len(items)]
    return data[:el.length_at] + _pack_length(el, length) + data[el.length_at + 4:]


def op_offset_table(data: bytes, offsets: list[int]) -> bytes:
    """Replace the basic offset table of encapsulated pixel data with hostile offsets."""
    for el in walk(data):
        if el.tag == ITEM and el.depth >= 1:
            prior = data[:el.start]
            if b"\xe0\x7f\x10\x00" not in prior[-16:] and b"\x7f\xe0\x00\x10" not in prior[-16:]:
                continue
            e = "<" if el.little else ">"
            table = b"".join(struct.pack(f"{e}I", o & 0xFFFFFFFF) for o in offsets)
            head = struct.pack(f"{e}HHI", 0xFFFE, 0xE000, len(table))
            return data[:el.start] + head + table + data[el.value_at + el.length:]
    return data


def op_nested_sequence(data: bytes, depth: int, terminated: bool) -> bytes:
    """Insert a private sequence nested ``depth`` levels deep (undefined lengths), before Pixel Data;
    unterminated, its delimiters are missing and it runs to the end of the file."""
    els = walk(data)
    pixel = next((el for el in els if el.tag == PIXEL_TAG and el.depth == 0), None)
    top = [el for el in els if el.depth == 0 and el.tag >> 16 != 2]
    if not top:
        return data
    implicit = top[0].vr is None
    e = "<" if top[0].little else ">"
    if implicit:
        opener = struct.pack(f"{e}HHI", 0x0009, 0x1010, 0xFFFFFFFF)
    else:
        opener = struct.pack(f"{e}HH", 0x0009, 0x1010) + b"SQ\x00\x00" + struct.pack(f"{e}I", 0xFFFFFFFF)
    item = struct.pack(f"{e}HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_end = struct.pack(f"{e}HHI", 0xFFFE, 0xE00D, 0)
    seq_end = struct.pack(f"{e}HHI", 0xFFFE, 0xE0DD, 0)
    body = (opener + item) * depth
    if terminated:
        body += (item_end + seq_end) * depth
    at = pixel.start if pixel is not None else len(data)
    # private group 0009 sorts before most tags: insert it where group 0009 belongs (after group 0008)
    after_0008 = [el for el in top if el.tag >> 16 <= 0x0008]
    at = (
        min(at, after_0008[-1].value_at + after_0008[-1].length)
        if after_0008 and after_0008[-1].length != 0xFFFFFFFF
        else at
    )
    if not terminated:
        return data[:at] + body
    return data[:at] + body + data[at:]


def op_deflate_bomb(data: bytes, megabytes: int) -> bytes:
    """Re-encode the dataset as Deflated Explicit VR Little Endian whose body inflates to ``megabytes``
    of zeros after the real header: a few kilobytes on disk, gigabytes once inflated."""
    els = walk(data)
    meta_end = next((el.start for el in els if el.tag >> 16 != 2), None)
    if meta_end is None or data[128:132] != b"DICM":
        return data
    out = op_syntax(data[:meta_end], "1.2.840.10008.1.2.1.99")
    body = data[meta_end:]
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunks = [comp.compress(body)]
    zeros = b"\x00" * (1 << 20)
    for _ in range(megabytes):
        chunks.append(comp.compress(zeros))
    chunks.append(comp.flush())
    return out + b"".join(chunks)


def op_duplicate_tail(data: bytes, times: int) -> bytes:
    """Repeat the last kilobyte many times (elements out of order, repeated pixel data)."""
    return data + data[-1024:] * times


OPS = {
    "bytes": (op_bytes, st.tuples(st.integers(0, 1 << 24), st.lists(st.integers(0, 255), min_size=1, max_size=8))),
    "header_bytes": (
        op_header_bytes,
        st.tuples(st.integers(0, 4096), st.lists(st.integers(0, 255), min_size=1, max_size=4)),
    ),
    "length": (op_length, st.tuples(st.integers(0, 400), st.sampled_from(LENGTHS) | st.integers(-9, 9), st.booleans())),
    "vr": (op_vr, st.tuples(st.integers(0, 400), st.sampled_from(VRS))),
    "tag_value": (
        op_tag_value,
        st.tuples(
            st.sampled_from(sorted(IMAGE_TAGS)), st.none() | st.sampled_from(US_VALUES), st.sampled_from(TEXT_VALUES)
        ),
    ),
    "syntax": (op_syntax, st.tuples(st.sampled_from(SYNTAXES))),
    "truncate": (op_truncate, st.tuples(st.integers(0, 999))),
    "append": (op_append, st.tuples(st.binary(min_size=1, max_size=64))),
    "pixel_length": (op_pixel_length, st.tuples(st.sampled_from(LENGTHS) | st.integers(0, 1 << 22))),
    "fragment": (op_fragment, st.tuples(st.integers(0, 40), st.sampled_from(LENGTHS) | st.integers(0, 1 << 20))),
    "offset_table": (
        op_offset_table,
        st.tuples(
            st.lists(st.sampled_from([0, 1, 7, 8, 0x7FFFFFFF, 0xFFFFFFF0]) | st.integers(0, 1 << 20), max_size=6)
        ),
    ),
    "nested_sequence": (op_nested_sequence, st.tuples(st.sampled_from([1, 2, 50, 400, 2000, 20000]), st.booleans())),
    "deflate_bomb": (op_deflate_bomb, st.tuples(st.sampled_from([1, 64, 512]))),
    "duplicate_tail": (op_duplicate_tail, st.tuples(st.integers(1, 64))),
}


def apply(data: bytes, ops: list[tuple[str, tuple]]) -> bytes:
    """Apply ``ops`` in order; an operation that does not fit the bytes left (a walker limit) is skipped."""
    for name, args in ops:
        try:
            data = OPS[name][0](data, *args)
        except (struct.error, IndexError, ValueError):
            continue
    return data


#: Operations drawn more often: the ones that reach deeper than the first parse error.
_WEIGHTED = (["tag_value"] * 4 + ["length"] * 3 + ["bytes"] * 2 + ["header_bytes"] * 2 + ["pixel_length"] * 2
             + ["fragment"] * 2 + ["syntax"] * 2 + ["vr", "truncate", "append", "offset_table", "nested_sequence",
                                                    "duplicate_tail"] + ["deflate_bomb"])


@st.composite
def operation(draw) -> tuple[str, tuple]:
    name = draw(st.sampled_from(_WEIGHTED))
    return name, draw(OPS[name][1])


@st.composite
def mutated_series(draw, n_seeds: int) -> tuple[int, list[list[tuple[str, tuple]]]]:
    """A seed index and, for each of 1-3 files made from it (same series), its list of operations."""
    seed = draw(st.integers(0, n_seeds - 1))
    files = draw(st.lists(st.lists(operation(), min_size=0, max_size=4), min_size=1, max_size=3))
    return seed, files


@functools.lru_cache(maxsize=None)
def seed_bytes(path: str) -> bytes:
    return Path(path).read_bytes()
