"""Decoding one source image into the cache's square uint8 format.

Chest X-rays arrive as DICOM (8-16 bit, MONOCHROME1 or 2, raw or compressed)
or as JPG/PNG. Everything ends as a ``size x size`` uint8 array, grayscale or
RGB, resized without keeping the aspect ratio (the paper resizes to 256x256).

DICOM pixels go through the modality LUT (rescale slope/intercept) and the
VOI LUT or stored window, the way a viewer shows them: the window's output
range becomes 0-255 (without a window, the image's own value range does);
MONOCHROME1 is inverted so that bone is always bright. Colour DICOMs (RGB,
YBR, palette) stay colour until :func:`resize` converts them. JPEG sources
use Pillow's reduced-size decoding (``draft``): a 2500x3000 JPEG decoded at
1/8 scale is several times faster, and the result is resized the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ltvcli.errors import LtvError

RASTER_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def load_image(source: str, size: int, channels: int, reduced: bool = True) -> np.ndarray:
    """Decode ``source`` (DICOM, JPG, PNG, ...) to uint8 [size, size] or [size, size, 3]."""
    path = Path(source)
    if not path.is_file():
        raise LtvError("file not found")
    if path.suffix.lower() in (".dcm", ".dicom") or (path.suffix.lower() not in RASTER_SUFFIXES and _is_dicom(path)):
        image = Image.fromarray(dicom_to_uint8(path))
    else:
        image = _open_raster(path, size if reduced else None)
    return resize(image, size, channels)


def load_image_full(source: str, size: int, channels: int) -> np.ndarray:
    """Like :func:`load_image` but without reduced-size JPEG decoding (for benchmarks and checks)."""
    return load_image(source, size, channels, reduced=False)


def default_workers(workers: int | None) -> int:
    """Decoding processes: the user's number, else min(8, CPU count); 0 decodes in this process."""
    if workers is None:
        return min(8, os.cpu_count() or 1)
    if workers < 0:
        raise LtvError(f"--workers must be 0 (decode in this process) or more; got {workers}")
    return workers


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


def _open_raster(path: Path, draft_size: int | None) -> Image.Image:
    with Image.open(path) as image:
        if draft_size is not None and image.format == "JPEG":
            # Decode at the smallest 1/2, 1/4 or 1/8 scale that is still at least the target size.
            image.draft(image.mode, (draft_size, draft_size))
        image.load()
    if image.mode in ("I;16", "I;16B", "I", "F"):
        return Image.fromarray(_stretch(np.asarray(image)))
    return image


def dicom_to_uint8(path: Path) -> np.ndarray:
    """Read a DICOM file's first frame as display-ready uint8: [H, W] grayscale, or [H, W, 3] for colour."""
    import pydicom
    from pydicom.pixels import apply_color_lut, pixel_array

    dataset = pydicom.dcmread(path)
    if "PixelData" not in dataset:
        raise LtvError("DICOM file has no pixel data")
    pixels = pixel_array(dataset, index=0)  # first frame only; YBR is converted to RGB
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, dataset)
    if not photometric.startswith("MONOCHROME"):
        return _stretch(pixels) if pixels.dtype != np.uint8 else pixels
    out = _display_grayscale(pixels, dataset)
    return 255 - out if photometric == "MONOCHROME1" else out


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
