"""Decoding one source image into the cache's square uint8 format.

Chest X-rays arrive as DICOM (8-16 bit, MONOCHROME1 or 2, raw or compressed)
or as JPG/PNG. Everything ends as a ``size x size`` uint8 array, grayscale or
RGB, resized without keeping the aspect ratio (the paper resizes to 256x256).

DICOM pixels go through the modality LUT (rescale slope/intercept) and the
VOI LUT or stored window, the way a viewer shows them, then are stretched to
0-255; MONOCHROME1 is inverted so that bone is always bright. JPEG sources
use Pillow's reduced-size decoding (``draft``): a 2500x3000 JPEG decoded at
1/8 scale is several times faster, and the result is resized the same way.
"""

from __future__ import annotations

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
    image = Image.open(path)
    if draft_size is not None and image.format == "JPEG":
        # Decode at the smallest 1/2, 1/4 or 1/8 scale that is still at least the target size.
        image.draft(image.mode, (draft_size, draft_size))
    image.load()
    if image.mode in ("I;16", "I;16B", "I", "F"):
        return Image.fromarray(_stretch(np.asarray(image, dtype=np.float64)))
    return image


def dicom_to_uint8(path: Path) -> np.ndarray:
    """Read a DICOM file's first frame as display-ready uint8 pixels."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    dataset = pydicom.dcmread(path)
    if "PixelData" not in dataset:
        raise LtvError("DICOM file has no pixel data")
    pixels = dataset.pixel_array
    if getattr(dataset, "NumberOfFrames", 1) not in (None, "", 1) and pixels.ndim == 3 and \
            dataset.get("SamplesPerPixel", 1) == 1:
        pixels = pixels[0]
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    if not photometric.startswith("MONOCHROME"):
        return np.asarray(Image.fromarray(pixels).convert("L")) if pixels.ndim == 3 else _stretch(pixels)
    values = apply_modality_lut(pixels, dataset)
    if "VOILUTSequence" in dataset or "WindowCenter" in dataset:
        values = apply_voi_lut(values, dataset, prefer_lut=True)
    out = _stretch(np.asarray(values, dtype=np.float64))
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out


def _stretch(values: np.ndarray) -> np.ndarray:
    """Map the value range of an image linearly onto 0-255."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
