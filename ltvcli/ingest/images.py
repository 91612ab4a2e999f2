"""Decoding one source image into the cache's square uint8 format.

Chest X-rays arrive as DICOM (8-16 bit, MONOCHROME1 or 2, raw or compressed)
or as JPG/PNG. Everything ends as a ``size x size`` uint8 array, grayscale or
RGB, resized without keeping the aspect ratio (the paper resizes to 256x256).

DICOM pixels go through the modality LUT (rescale slope/intercept) and the
VOI LUT or stored window, the way a viewer shows them: the window's output
range becomes 0-255 (without a window, the image's own value range does);
MONOCHROME1 is inverted so that bone is always bright. Colour DICOMs (RGB,
YBR, palette) stay colour until :func:`resize` converts them. Compressed
DICOM (JPEG Lossless, JPEG-LS, JPEG 2000, RLE, JPEG) is decoded by pydicom's
plugins (python-gdcm, pyjpegls, pylibjpeg-openjpeg, pylibjpeg-rle, Pillow);
a file none of them can read fails with the name of its transfer syntax only.

JPEG sources are decoded at reduced size (:mod:`ltvcli.ingest.jpeg`:
libjpeg-turbo's scaled decoding through simplejpeg, Pillow's ``draft`` where
that cannot be used) and then resized the same way as a full decode.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from ltvcli.errors import LtvError
from ltvcli.ingest.jpeg import decode_scaled, is_jpeg

RASTER_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
#: How JPEGs are decoded: ``scaled`` (libjpeg-turbo via simplejpeg, else Pillow's draft), ``draft`` (Pillow's
#: reduced-size decoding only, ltv's decoder before simplejpeg) or ``full`` (full size, the reference).
JPEG_MODES = ("scaled", "draft", "full")


def load_image(source: str, size: int, channels: int, jpeg: str = "scaled") -> np.ndarray:
    """Decode ``source`` (DICOM, JPG, PNG, ...) to uint8 [size, size] or [size, size, 3]."""
    if jpeg not in JPEG_MODES:
        raise ValueError(f"jpeg must be one of {JPEG_MODES}, got {jpeg!r}")
    path = Path(source)
    if not path.is_file():
        raise LtvError("file not found")
    if path.suffix.lower() in (".dcm", ".dicom") or (path.suffix.lower() not in RASTER_SUFFIXES and _is_dicom(path)):
        image = Image.fromarray(dicom_to_uint8(path))
    else:
        image = _open_raster(path, size, channels, jpeg)
    return resize(image, size, channels)


def load_image_full(source: str, size: int, channels: int) -> np.ndarray:
    """The reference decode: :func:`load_image` with full-size JPEG decoding (for benchmarks and checks)."""
    return load_image(source, size, channels, jpeg="full")


def default_workers(workers: int | None) -> int:
    """Decoding processes: the user's number, else min(8, CPU count); 0 decodes in this process."""
    if workers is None:
        return min(8, os.cpu_count() or 1)
    if workers < 0:
        raise LtvError(f"--workers must be 0 (decode in this process) or more; got {workers}")
    return workers


@dataclass(frozen=True)
class Decoding:
    """How an ingest decodes its images, as :func:`ltvcli.dataset.build_dataset` takes it.

    ``decode`` turns one file into a cache image in ``workers`` processes;
    ``batch``, when set, decodes the JPEGs of a whole chunk at once in this
    process (on a GPU) and leaves the rest (``None``) to ``decode``.
    """

    decode: Callable[[str, int, int], np.ndarray]
    batch: Callable[[list[str], int, int], list[np.ndarray | None]] | None
    workers: int


def image_decoding(device: str = "cpu", workers: int | None = None) -> Decoding:
    """Per-file decoding in worker processes on ``cpu``; batches of JPEGs on the GPU for ``cuda``.

    ``auto`` takes the GPU when there is one. torch is imported only for a
    device other than ``cpu``, so a CPU ingest starts as fast as before.
    """
    workers = default_workers(workers)
    if device == "cpu":
        return Decoding(load_image, None, workers)
    from ltvcli.runtime.device import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cpu":
        return Decoding(load_image, None, workers)
    from ltvcli.ingest.batch import BatchDecoder

    return Decoding(load_image, BatchDecoder(resolved), 0)


def resize(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """Convert to grayscale or RGB and resize to a square with antialiasing."""
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(image, dtype=np.uint8)


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


def _open_raster(path: Path, size: int, channels: int, jpeg: str) -> Image.Image:
    data = path.read_bytes()
    if jpeg == "scaled" and is_jpeg(data):
        pixels = decode_scaled(data, size, channels)
        if pixels is not None:
            return Image.fromarray(pixels)
    try:
        opened = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise LtvError("not an image format Pillow can read") from None
    with opened as image:
        if jpeg != "full" and image.format == "JPEG":
            # Decode at the smallest 1/2, 1/4 or 1/8 scale that is still at least the target size.
            image.draft(image.mode, (size, size))
        image.load()
    if image.mode in ("I;16", "I;16B", "I", "F"):
        return Image.fromarray(_stretch(np.asarray(image)))
    return image


def dicom_to_uint8(path: Path) -> np.ndarray:
    """Read a DICOM file's first frame as display-ready uint8: [H, W] grayscale, or [H, W, 3] for colour."""
    import pydicom
    from pydicom.pixels import apply_color_lut

    dataset = pydicom.dcmread(path)
    if "PixelData" not in dataset:
        raise LtvError("DICOM file has no pixel data")
    pixels = _first_frame(dataset)
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, dataset)
    if not photometric.startswith("MONOCHROME"):
        return _stretch(pixels) if pixels.dtype != np.uint8 else pixels
    out = _display_grayscale(pixels, dataset)
    return 255 - out if photometric == "MONOCHROME1" else out


#: Plugins tried before pydicom's own order (which starts with GDCM) where another one decodes a chest film
#: about twice as fast (benchmarks/bench_ingest.py --codec-images); the others stay behind them as fallbacks.
FASTEST_PLUGIN = {
    "1.2.840.10008.1.2.4.80": "pyjpegls",  # JPEG-LS Lossless: CharLS
    "1.2.840.10008.1.2.4.81": "pyjpegls",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg",  # JPEG 2000 (lossy): OpenJPEG
}


def _first_frame(dataset) -> np.ndarray:
    """The first frame's stored values (YBR converted to RGB), decoded by whichever plugin can.

    pydicom tries every installed decoder of the transfer syntax in turn. When
    none can read the frame, the error names the transfer syntax and nothing
    else: the plugins' own messages may quote header values.
    """
    from pydicom.pixels import get_decoder, pixel_array
    from pydicom.uid import UID

    syntax = UID(str(dataset.file_meta.get("TransferSyntaxUID", "")))
    fastest = FASTEST_PLUGIN.get(syntax)
    if fastest is not None and fastest in get_decoder(syntax).available_plugins:
        try:
            return pixel_array(dataset, index=0, decoding_plugin=fastest)
        except Exception:  # every installed plugin gets its turn below
            pass
    try:
        return pixel_array(dataset, index=0)
    except Exception as exc:
        if syntax.is_transfer_syntax and not syntax.is_compressed:
            raise  # uncompressed data that does not fit its header: pydicom's message says how
        try:
            available = get_decoder(syntax).is_available
        except NotImplementedError:  # a syntax pydicom has no decoder for at all
            available = False
        if not available:
            raise LtvError(f"no installed decoder reads {syntax.name} pixel data") from exc
        raise LtvError(f"{syntax.name} pixel data could not be decoded (damaged, or a variant the "
                       f"installed decoders do not read)") from exc


def _display_grayscale(pixels: np.ndarray, dataset) -> np.ndarray:
    """Grey levels 0-255 of a monochrome frame, computed once per stored value and then looked up.

    Up to 16 bits there are at most 65536 stored values, far fewer than the
    7.5 million pixels of a chest film: mapping every possible value through
    :func:`_display_map` and indexing with the pixels gives the same result
    several times faster than mapping every pixel.
    """
    extremes = np.array([pixels.min(), pixels.max()], dtype=pixels.dtype)
    if pixels.dtype.kind not in "iu" or pixels.dtype.itemsize > 2:
        return _display_map(pixels, dataset, extremes)
    unsigned = np.dtype(f"u{pixels.dtype.itemsize}")
    every_value = np.arange(2 ** (8 * unsigned.itemsize), dtype=unsigned).view(pixels.dtype)
    return _display_map(every_value, dataset, extremes)[pixels.view(unsigned)]


def _display_map(stored: np.ndarray, dataset, extremes: np.ndarray) -> np.ndarray:
    """Modality LUT, then the VOI LUT or window when the file has one, mapped onto 0-255.

    With a VOI transform the mapping is that of a viewer: the transform's
    output range becomes 0-255, so an image whose pixels fill only part of the
    window keeps its brightness instead of being stretched. Without one, the
    image's own range (its ``extremes`` stored values, after the modality LUT)
    is stretched onto 0-255.
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(stored, dataset)
    if "VOILUTSequence" in dataset:
        return _apply_voi_table(values, dataset)
    if "WindowCenter" in dataset and "WindowWidth" in dataset:
        shown = apply_voi_lut(values, dataset, prefer_lut=False)
        ends = apply_voi_lut(np.array([-1e12, 1e12]), dataset, prefer_lut=False)  # the window's output range
    else:
        shown, ends = values, np.asarray(apply_modality_lut(extremes, dataset), dtype=np.float64)
    return _stretch(shown, float(ends.min()), float(ends.max()))


def _apply_voi_table(values: np.ndarray, dataset) -> np.ndarray:
    """Apply the first VOI LUT of the file; its output range (the table's values) becomes 0-255."""
    from pydicom.pixels import apply_voi_lut

    item = dataset.VOILUTSequence[0]
    entries, first, depth = (int(v) for v in item.LUTDescriptor)
    if depth == 8:
        # pydicom indexes the table with an array of the entries' dtype: uint8 indices wrap past 256 entries.
        item.LUTDescriptor = [entries, first, 16]
    domain = np.arange(first, first + (entries or 2 ** 16))
    table = apply_voi_lut(domain, dataset)
    inputs = np.clip(np.rint(values), domain[0], domain[-1]).astype(np.int64)
    return _stretch(apply_voi_lut(inputs, dataset), float(table.min()), float(table.max()))


def _stretch(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Map ``low``..``high`` (default: the image's own range) linearly onto 0-255, clipping outside."""
    values = np.asarray(values, dtype=np.float64)
    low = float(values.min()) if low is None else low
    high = float(values.max()) if high is None else high
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def check_image_folder(images: str | os.PathLike | None) -> Path | None:
    """The image folder of a source as a Path, checked to exist; None (a label-only ingest) stays None."""
    if images is None:
        return None
    images = Path(images)
    if not images.is_dir():
        raise LtvError(f"{images}: no such image folder")
    return images
