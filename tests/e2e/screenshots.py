"""Where the browser tests put their screenshots, and a check that one shows something.

By default a screenshot goes to a temporary folder (a test run leaves the tree clean); with
``FLYWHEEL_UPDATE_SCREENSHOTS=1`` it replaces the committed example in tests/bench/results/.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
UPDATE = os.environ.get("FLYWHEEL_UPDATE_SCREENSHOTS") == "1"
_BYTES_PER_PIXEL = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples (8-bit)


def screenshot_dir(scratch: Path) -> Path:
    return RESULTS if UPDATE else scratch


def distinct_rows(png: bytes) -> tuple[int, int, int]:
    """(width, height, distinct filtered scanlines) of an 8-bit, non-interlaced PNG. A blank or
    one-colour page has one or two distinct scanlines; a page with text has hundreds."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or interlace != 0 or colour not in _BYTES_PER_PIXEL:
        raise ValueError(f"unexpected PNG format: depth {depth}, colour type {colour}")
    raw = zlib.decompress(bytes(idat))
    stride = 1 + width * _BYTES_PER_PIXEL[colour]
    assert len(raw) == stride * height, "truncated image data"
    return width, height, len({raw[i : i + stride] for i in range(0, len(raw), stride)})


def assert_readable(path: Path, width: int, min_rows: int = 100) -> None:
    """The screenshot is a full-width page with content on many lines, not a blank page."""
    shown_width, height, rows = distinct_rows(path.read_bytes())
    assert (shown_width, height > 0) == (width, True), (shown_width, height)
    assert rows >= min_rows, f"{path}: only {rows} distinct pixel rows (a blank page?)"
