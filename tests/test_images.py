"""Image decoding (ltvcli.ingest.images): DICOM variants, PNG/JPG, reduced-size JPEG decoding."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ltvcli.errors import LtvError, OptionError
from ltvcli.ingest.images import default_workers, dicom_to_uint8, load_image, load_image_full

from helpers_ingest import write_dicom, write_raster

SHAPE = (24, 20)


def stored_12bit(seed: int = 0) -> np.ndarray:
    """12-bit stored values with a structure (ramp + noise) so that resampling differences show."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(200, 3900, SHAPE[1])[None, :] + rng.normal(0, 50, SHAPE)
    return np.clip(ramp, 0, 4095).astype(np.uint16)


def stretch(values: np.ndarray) -> np.ndarray:
    """Expected min-max mapping onto 0-255, written out independently of the module."""
    values = values.astype(np.float64)
    return np.rint((values - values.min()) * 255 / (values.max() - values.min())).astype(np.uint8)


def window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 linear window, output mapped onto 0-255."""
    fraction = np.clip((values.astype(np.float64) - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    return np.rint(fraction * 255).astype(np.uint8)


@pytest.mark.parametrize("syntax", ["explicit", "implicit", "rle", "j2k"])
def test_transfer_syntaxes_decode_to_the_same_pixels(tmp_path, syntax):
    pixels = stored_12bit()
    path = write_dicom(tmp_path / f"{syntax}.dcm", pixels, bits_stored=12, syntax=syntax)
    np.testing.assert_array_equal(dicom_to_uint8(path), stretch(pixels))


def test_monochrome1_is_inverted(tmp_path):
    pixels = stored_12bit()
    mono2 = dicom_to_uint8(write_dicom(tmp_path / "m2.dcm", pixels, bits_stored=12))
    mono1 = dicom_to_uint8(write_dicom(tmp_path / "m1.dcm", pixels, bits_stored=12, photometric="MONOCHROME1"))
    np.testing.assert_array_equal(mono1, 255 - mono2)


def test_rescale_without_window_keeps_the_picture(tmp_path):
    pixels = stored_12bit()
    path = write_dicom(tmp_path / "r.dcm", pixels, bits_stored=12, slope=2.0, intercept=-1024)
    np.testing.assert_array_equal(dicom_to_uint8(path), stretch(pixels))
    signed = (pixels.astype(np.int32) - 2048).astype(np.int16)
    path = write_dicom(tmp_path / "s.dcm", signed, bits_stored=12, slope=1.0, intercept=0)
    np.testing.assert_array_equal(dicom_to_uint8(path), stretch(signed))


def test_window_is_applied_like_a_viewer(tmp_path):
    pixels = stored_12bit()
    path = write_dicom(tmp_path / "w.dcm", pixels, bits_stored=12, window=(2000, 1500))
    decoded = dicom_to_uint8(path)
    np.testing.assert_allclose(decoded.astype(int), window(pixels, 2000, 1500).astype(int), atol=1)
    assert decoded.min() == 0 and decoded.max() == 255  # the ramp crosses both ends of the window


def test_window_does_not_stretch_an_image_inside_it(tmp_path):
    """An image whose values fill a tenth of the window stays a mid-grey image, as in a viewer."""
    flat = np.full(SHAPE, 1000, dtype=np.uint16)
    flat[:, SHAPE[1] // 2:] = 1400
    decoded = dicom_to_uint8(write_dicom(tmp_path / "f.dcm", flat, bits_stored=12, window=(1200, 4000)))
    np.testing.assert_allclose(decoded.astype(int), window(flat, 1200, 4000).astype(int), atol=1)
    assert 100 < decoded.min() < decoded.max() < 160


def test_window_in_rescaled_units(tmp_path):
    pixels = stored_12bit()
    path = write_dicom(tmp_path / "rw.dcm", pixels, bits_stored=12, slope=2.0, intercept=-1000, window=(3000, 4000))
    np.testing.assert_allclose(dicom_to_uint8(path).astype(int), window(pixels * 2.0 - 1000, 3000, 4000).astype(int),
                               atol=1)


def test_voi_lut_sequence_is_preferred(tmp_path):
    lut = np.rint(np.sqrt(np.arange(4096) / 4095) * 255).astype(np.uint16)
    pixels = stored_12bit()
    path = write_dicom(tmp_path / "lut.dcm", pixels, bits_stored=12, voi_lut=lut, window=(100, 10))
    np.testing.assert_array_equal(dicom_to_uint8(path), lut[pixels].astype(np.uint8))


def test_8bit_and_jpeg_baseline(tmp_path):
    pixels = (stored_12bit() // 16).astype(np.uint8)
    raw = dicom_to_uint8(write_dicom(tmp_path / "8.dcm", pixels))
    np.testing.assert_array_equal(raw, stretch(pixels))
    jpeg = dicom_to_uint8(write_dicom(tmp_path / "j.dcm", pixels, syntax="jpeg"))
    assert np.abs(jpeg.astype(int) - raw.astype(int)).mean() < 4  # lossy, but the same picture


def test_multiframe_uses_the_first_frame(tmp_path):
    frames = np.stack([stored_12bit(0), stored_12bit(1)[:, ::-1]])
    path = write_dicom(tmp_path / "mf.dcm", frames[0], bits_stored=12, frames=frames)
    np.testing.assert_array_equal(dicom_to_uint8(path), stretch(frames[0]))


def test_resize_and_suffixless_dicom(tmp_path):
    pixels = stored_12bit()
    dcm = write_dicom(tmp_path / "a.dcm", pixels, bits_stored=12)
    nosuffix = write_dicom(tmp_path / "IM0001", pixels, bits_stored=12)
    small = load_image(str(dcm), 8, 1)
    assert small.shape == (8, 8) and small.dtype == np.uint8
    np.testing.assert_array_equal(load_image(str(nosuffix), 8, 1), small)
    expected = np.asarray(Image.fromarray(stretch(pixels)).resize((8, 8), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(small, expected)
    rgb = load_image(str(dcm), 8, 3)
    assert rgb.shape == (8, 8, 3) and (rgb[..., 0] == small).all()


def test_dicom_problems_raise(tmp_path):
    empty = write_dicom(tmp_path / "empty.dcm", stored_12bit(), bits_stored=12, pixel_data=False)
    with pytest.raises(LtvError, match="no pixel data"):
        load_image(str(empty), 8, 1)
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\0" * 300)
    with pytest.raises(Exception):
        load_image(str(garbage), 8, 1)
    with pytest.raises(LtvError, match="file not found"):
        load_image(str(tmp_path / "absent.dcm"), 8, 1)


def test_png_8_and_16_bit(tmp_path):
    gray = (stored_12bit() // 16).astype(np.uint8)
    png = write_raster(tmp_path / "g.png", gray)
    expected = np.asarray(Image.fromarray(gray).resize((8, 8), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(load_image(str(png), 8, 1), expected)
    deep = write_raster(tmp_path / "d.png", stored_12bit())
    np.testing.assert_array_equal(load_image(str(deep), SHAPE[1], 1), _resize_square(stretch(stored_12bit())))


def _resize_square(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((SHAPE[1], SHAPE[1]), Image.Resampling.BILINEAR))


def test_reduced_jpeg_decoding_is_close_to_full_decoding(tmp_path):
    yy, xx = np.mgrid[0:600, 0:500]
    picture = (128 + 100 * np.sin(xx / 40.0) * np.cos(yy / 55.0)).astype(np.uint8)
    jpg = write_raster(tmp_path / "big.jpg", picture, quality=95)
    reduced, full = load_image(str(jpg), 64, 1), load_image_full(str(jpg), 64, 1)
    assert reduced.shape == full.shape == (64, 64)
    assert np.abs(reduced.astype(int) - full.astype(int)).mean() < 2
    with Image.open(jpg) as image:  # the draft really decodes at a reduced scale (1/4 here: 150x125 >= 64)
        image.draft("L", (64, 64))
        assert image.size == (125, 150)


def test_rgb_jpg_in_one_or_three_channels(tmp_path):
    colour = np.zeros((32, 32, 3), dtype=np.uint8)
    colour[..., 0] = 200
    jpg = write_raster(tmp_path / "c.jpg", colour, quality=95)
    rgb = load_image(str(jpg), 16, 3)
    assert rgb.shape == (16, 16, 3) and abs(int(rgb[..., 0].mean()) - 200) < 4 and rgb[..., 2].mean() < 5
    gray = load_image(str(jpg), 16, 1)
    assert gray.shape == (16, 16) and abs(gray.mean() - 0.299 * 200) < 4


def test_default_workers():
    assert 1 <= default_workers(None) <= 8
    assert default_workers(0) == 0 and default_workers(3) == 3
    with pytest.raises(OptionError, match="^workers must be 0"):
        default_workers(-2)
