"""Check that encapsulated (compressed) pixel data is whole, by walking its item tags, without decoding.

Encapsulated Pixel Data (PS3.5 A.4) has an undefined length: a Basic Offset Table item, then one or more
fragment items (FFFE,E000) of even length holding the codestream, then a Sequence Delimitation Item
(FFFE,E0DD). Every frame starts a fragment of its own, so a whole file has at least NumberOfFrames
fragments. A copy cut short (an aborted copy, a damaged CD) still parses as a header, but its last item
runs past the end of the file or its delimiter is missing. Finding that costs one 8-byte read per item,
where decoding a JPEG 2000 slice costs ~30 ms: the scan can afford it for every file, so a truncated copy
is skipped with a reason instead of joining its series as a duplicate that then fails to decode.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_ITEM = 0xFFFEE000
_SEQUENCE_DELIMITER = 0xFFFEE0DD
#: Items to walk at most (a forged file of millions of empty items is refused, not walked for seconds).
MAX_ITEMS = 1 << 20


def check_fragments(fp: BinaryIO, offset: int, file_size: int, frames: int) -> None:
    """Walk the items of encapsulated Pixel Data whose value starts at ``offset`` (little endian).

    Parameters
    ----------
    fp:
        The open file (its position is moved).
    offset:
        Byte offset of the first item (just after the Pixel Data element's undefined length).
    file_size:
        Size of the file in bytes.
    frames:
        NumberOfFrames: a whole file has at least this many fragments after the offset table.

    Raises
    ------
    ValueError
        The pixel data is truncated or its item structure is broken; the message is the reason shown.
    """
    position, items = offset, 0
    while True:
        if position + 8 > file_size:
            raise ValueError(_truncated(f"the file ends after {_fragments(items)}, before the sequence delimiter"))
        fp.seek(position)
        head = fp.read(8)
        if len(head) < 8:
            raise ValueError(_truncated(f"the file ends after {_fragments(items)}, before the sequence delimiter"))
        group, element, length = struct.unpack("<HHI", head)
        tag = group << 16 | element
        if tag == _SEQUENCE_DELIMITER:
            break
        if tag != _ITEM:
            raise ValueError(f"encapsulated pixel data broken: tag ({group:04X},{element:04X}) where an item "
                             f"was expected (after {_fragments(items)})")
        if length == 0xFFFFFFFF:
            raise ValueError("encapsulated pixel data broken: an item of undefined length")
        position += 8 + length
        if position > file_size:
            what = "the offset table" if items == 0 else f"fragment {items}"
            raise ValueError(_truncated(f"{what} runs {position - file_size} bytes past the end of the file"))
        items += 1
        if items > MAX_ITEMS:
            raise ValueError(f"encapsulated pixel data broken: more than {MAX_ITEMS} items")
    fragments = max(0, items - 1)  # the first item is the Basic Offset Table (possibly empty)
    if fragments < max(1, frames):
        raise ValueError(f"encapsulated pixel data incomplete: {fragments} fragment(s) for {frames} frame(s)")


def _fragments(items: int) -> str:
    n = max(0, items - 1)
    return f"{n} fragment{'s' if n != 1 else ''}"


def _truncated(how: str) -> str:
    return f"compressed pixel data truncated (a copy cut short?): {how}"
