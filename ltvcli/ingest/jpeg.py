"""JPEG decoding on the CPU: libjpeg-turbo's scaled decoding, with Pillow wherever it cannot be used.

A chest film is about 2500x3000 pixels and the cache keeps 256x256, so a JPEG
is decoded at the smallest scale that is still at least the target size:
libjpeg-turbo then runs a 1x1, 2x2 or 4x4 inverse DCT per block instead of
the 8x8 one. :func:`decode_scaled` does this through simplejpeg (which ships
its own libjpeg-turbo) in one call on the file's bytes, reading grey straight
from the luma channel when the cache is grayscale. Pillow's ``draft`` mode
scales the same way through the same library, so the gain over it is small
(about 6 % of CPU per film, docs/performance.md): every coefficient of the
full-size image is still Huffman-decoded, and that entropy decoding, which
no scaling can skip, is most of the time.

It declines (returns ``None``, and the caller uses Pillow) wherever simplejpeg
does not apply: no simplejpeg installed, 12-bit or lossless JPEG, CMYK/YCCK,
arithmetic coding, or a stream that simplejpeg reports as damaged (Pillow
then decides, and its error is the one the user sees).

:func:`jpeg_frame` reads the frame header (precision, components, coding
process) from the bytes; the batched GPU decoder uses it too, to choose the
files nvJPEG can take.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Start-of-frame markers of Huffman-coded DCT JPEG: baseline, extended sequential, progressive.
HUFFMAN_DCT = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive"}
#: Every start-of-frame marker (0xC4 DHT, 0xC8 JPG and 0xCC DAC are not frames).
_FRAME_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = set(range(0xD0, 0xDA)) | {0x01}  # RSTn, SOI, EOI and TEM carry no length


@dataclass(frozen=True)
class JpegFrame:
    """What the frame header says: its start-of-frame marker, bits per sample and colour components."""

    marker: int
    precision: int
    components: int

    @property
    def plain(self) -> bool:
        """8-bit Huffman-coded DCT JPEG with one (grey) or three (YCbCr/RGB) components."""
        return self.marker in HUFFMAN_DCT and self.precision == 8 and self.components in (1, 3)


def is_jpeg(data: bytes) -> bool:
    """Whether ``data`` starts with a JPEG start-of-image marker."""
    return data[:2] == b"\xff\xd8"


def jpeg_frame(data: bytes) -> JpegFrame | None:
    """The frame header of a JPEG stream, or ``None`` when ``data`` has none before the first scan."""
    if not is_jpeg(data):
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if marker in _FRAME_MARKERS:
            if position + 10 > len(data):
                return None
            return JpegFrame(marker, data[position + 4], data[position + 9])
        if marker == 0xDA:  # start of scan before any frame header: not a valid stream
            return None
        position += 2 + length
    return None


def decode_scaled(data: bytes, size: int, channels: int) -> np.ndarray | None:
    """Decode at the smallest libjpeg-turbo scale whose sides are both >= ``size``; ``None`` if not applicable.

    The result is uint8 [H, W] (grey: the luma channel) or [H, W, 3] (RGB);
    a grey JPEG stays [H, W] even when ``channels`` is 3, and the caller's
    resize makes it RGB, exactly as for a Pillow decode.
    """
    frame = jpeg_frame(data)
    if frame is None or not frame.plain:
        return None
    try:
        import simplejpeg
    except ImportError:
        return None
    grey = channels == 1 or frame.components == 1
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace="GRAY" if grey else "RGB", min_height=size, min_width=size)
    except ValueError:  # damaged or unusual stream: Pillow decides, and reports
        return None
    return pixels[..., 0] if grey else pixels
