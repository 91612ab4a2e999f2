"""Decoders: compressed DICOM transfer syntaxes, the fast JPEG paths and their agreement with the reference decode."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pydicom
import pytest
import torch
from PIL import Image
from pydicom import uid
from pydicom.encaps import encapsulate

import ltvcli.ingest.jpeg as jpeg
from ltvcli.dataset import build_dataset
from ltvcli.errors import LtvError
from ltvcli.ingest.batch import BatchDecoder
from ltvcli.ingest.images import dicom_to_uint8, load_image, load_image_full
from ltvcli.ingest.jpeg import decode_scaled, jpeg_frame
from ltvcli.ingest.mimic import mimic_spec

from helpers_ingest import (MimicImage, dicom_id, encode_dicom, error_line, mean_difference, radiograph, write_dicom,
                            write_mimic, write_raster)

# ----------------------------------------------------------------------------- DICOM transfer syntaxes

#: Stored 12-bit values span 256 levels around 2028, shown through a window 256 wide: one stored level is one
#: grey level, so the displayed image equals ``stored - LOW`` exactly and a decoding error shows at full size.
LOW, WINDOW = 1900, (2028, 256)
CODECS = {  # name: transfer syntax, lossless, encoder options
    "rle": (uid.RLELossless, True, {}),
    "jpeg-lossless-sv1": (uid.JPEGLosslessSV1, True, {}),
    "jpeg-lossless": (uid.JPEGLossless, True, {}),
    "jpeg-ls": (uid.JPEGLSLossless, True, {}),
    "jpeg-ls-near": (uid.JPEGLSNearLossless, False, {"jls_error": 2}),
    "j2k": (uid.JPEG2000Lossless, True, {}),
    "j2k-lossy": (uid.JPEG2000, False, {"j2k_psnr": [70]}),  # dB against the 12-bit peak
}


def stored_values(shape=(64, 48), seed: int = 0) -> np.ndarray:
    """12-bit stored values (above 255, so 12-bit coding is exercised): a ramp with noise, 256 levels wide."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, shape[1])[None, :] + rng.normal(0, 12, shape)
    return (LOW + np.clip(np.rint(ramp), 0, 255)).astype(np.uint16)


def coded_dicom(path, name: str, pixels: np.ndarray):
    syntax, _, options = CODECS[name]
    write_dicom(path, pixels, bits_stored=12, window=WINDOW)
    return encode_dicom(path, syntax, **options)


@pytest.mark.parametrize("name", CODECS)
def test_every_transfer_syntax_decodes(tmp_path, name):
    syntax, lossless, _ = CODECS[name]
    pixels = stored_values()
    path = coded_dicom(tmp_path / f"{name}.dcm", name, pixels)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax  # really stored in that syntax
    expected = (pixels - LOW).astype(int)
    decoded = dicom_to_uint8(path).astype(int)
    if lossless:
        np.testing.assert_array_equal(decoded, expected)
    else:
        error = np.abs(decoded - expected)
        assert 0 < error.mean() < 2 and error.max() <= 12, (error.mean(), error.max())  # lossy, but barely


def test_undecodable_dicom_is_skipped_with_its_transfer_syntax_only(cli, tmp_path):
    """A damaged JPEG 2000 frame and a syntax nothing decodes: skipped.csv names the syntax, no header values."""
    src = tmp_path / "src"
    good = coded_dicom(src / "good.dcm", "j2k", stored_values())
    damaged = coded_dicom(src / "damaged.dcm", "j2k", stored_values(seed=1))
    ds = pydicom.dcmread(damaged)
    ds.PatientName = "SECRET^NAME"
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(200)])  # a J2K codestream start, then nothing valid
    ds.save_as(damaged)
    video = write_dicom(src / "video.dcm", stored_values(seed=2), bits_stored=12)
    ds = pydicom.dcmread(video)
    ds.file_meta.TransferSyntaxUID = uid.MPEG2MPML
    ds.PixelData = encapsulate([bytes(64)])
    ds.save_as(video)
    labels = pd.DataFrame({"image": [p.name for p in (good, damaged, video)], "rater": ["a", "b", "a"]})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    result = cli("ingest", "table", tmp_path / "labels.csv", "--images", src, "--out", tmp_path / "ds",
                 "--labeller", "rater", "--size", "16", "--workers", "0", "--val-fraction", "0", "--test-fraction", "0")
    skipped = pd.read_csv(tmp_path / "ds" / "skipped.csv").set_index("image_id")["reason"]
    assert skipped["damaged.dcm"] == ("JPEG 2000 Image Compression (Lossless Only) pixel data could not be "
                                      "decoded (damaged, or a variant the installed decoders do not read)")
    assert skipped["video.dcm"] == "no installed decoder reads MPEG2 Main Profile / Main Level pixel data"
    assert "SECRET" not in result.output and "good.dcm" not in set(skipped.index)


# ----------------------------------------------------------------------------- JPEG: fast paths vs the reference


@pytest.fixture
def jpegs(tmp_path):
    """Grey and colour JPEGs, as the per-file and batched decoders see them."""
    grey = [write_raster(tmp_path / f"g{i}.jpg", radiograph(seed=i), quality=95) for i in range(3)]
    colour = np.stack([radiograph(seed=5), radiograph(seed=6) // 2, radiograph(seed=7)], axis=-1)
    return grey + [write_raster(tmp_path / "c.jpg", colour, quality=90)]


@pytest.mark.parametrize("channels", [1, 3])
def test_scaled_jpeg_decoding_matches_the_reference(jpegs, channels):
    for path in jpegs:
        scaled = load_image(str(path), 64, channels)
        assert mean_difference(scaled, load_image_full(str(path), 64, channels)) <= 2
        assert mean_difference(scaled, load_image(str(path), 64, channels, jpeg="draft")) <= 2
    data = jpegs[0].read_bytes()
    pixels = decode_scaled(data, 64, 1)  # 600x500 at 1/4 scale is 150x125, both sides still >= 64
    assert pixels is not None and pixels.shape == (150, 125)


@pytest.mark.parametrize("channels", [1, 3])
def test_batched_decoding_on_the_cpu_matches_the_reference(jpegs, tmp_path, channels):
    png = write_raster(tmp_path / "p.png", radiograph(seed=9))
    sources = [str(p) for p in jpegs] + [str(png), str(tmp_path / "absent.jpg")]
    decoded = BatchDecoder("cpu", batch_size=2)(sources, 64, channels)
    assert decoded[-2] is None and decoded[-1] is None  # PNG and a missing file are left to the per-file decoder
    for path, pixels in zip(jpegs, decoded):
        reference = load_image_full(str(path), 64, channels)
        assert pixels.shape == reference.shape and pixels.dtype == np.uint8
        assert mean_difference(pixels, reference) <= 2


def test_batched_build_gives_the_per_file_result(tmp_path):
    """build_dataset with the batch decoder: JPEGs on the device, DICOM and a damaged JPEG through the CPU path."""
    rows = [MimicImage(dicom_id(i), f"1{i:07d}", f"5{i:07d}", "PA", "train") for i in range(6)]
    source = write_mimic(tmp_path / "src", images=rows, labels={}, image_format="mixed", size=(120, 100),
                         pixels=lambda i, shape: radiograph(shape, seed=i), reports=False)
    damaged = next(source.images.rglob(f"{dicom_id(2)}.jpg"))
    damaged.write_bytes(damaged.read_bytes()[:400])
    spec = mimic_spec(**source.kwargs())
    per_file = build_dataset(spec, tmp_path / "cpu", size=32, channels=1, decode=load_image, workers=0)
    batched = build_dataset(spec, tmp_path / "batch", size=32, channels=1, decode=load_image,
                            decode_batch=BatchDecoder("cpu", batch_size=4))
    assert list(batched.manifest["image_id"]) == list(per_file.manifest["image_id"]) and len(batched) == 5
    assert mean_difference(batched.images, per_file.images) <= 2
    dicoms = (batched.manifest["source"].str.endswith(".dcm")).to_numpy()
    np.testing.assert_array_equal(batched.images[dicoms], per_file.images[dicoms])  # the same CPU decode
    skipped = pd.read_csv(tmp_path / "batch" / "skipped.csv")
    assert skipped["image_id"].tolist() == [dicom_id(2)]
    assert skipped["reason"].tolist() == pd.read_csv(tmp_path / "cpu" / "skipped.csv")["reason"].tolist()


def test_jpeg_frame_header(tmp_path):
    grey = write_raster(tmp_path / "g.jpg", radiograph(), quality=90).read_bytes()
    assert jpeg_frame(grey) == jpeg.JpegFrame(0xC0, 8, 1)
    progressive = write_raster(tmp_path / "p.jpg", radiograph(), quality=90, progressive=True).read_bytes()
    assert jpeg_frame(progressive) == jpeg.JpegFrame(0xC2, 8, 1)
    cmyk = tmp_path / "k.jpg"
    Image.new("CMYK", (40, 30), (10, 200, 30, 5)).save(cmyk)
    assert jpeg_frame(cmyk.read_bytes()).components == 4 and not jpeg_frame(cmyk.read_bytes()).plain
    assert jpeg_frame(b"\x89PNG\r\n") is None and jpeg_frame(grey[:20]) is None


def test_jpeg_kinds_simplejpeg_cannot_take_fall_back_to_pillow(tmp_path, monkeypatch):
    cmyk = tmp_path / "k.jpg"
    Image.new("CMYK", (80, 60), (10, 200, 30, 5)).save(cmyk)
    assert decode_scaled(cmyk.read_bytes(), 16, 3) is None
    np.testing.assert_array_equal(load_image(str(cmyk), 16, 3), load_image_full(str(cmyk), 16, 3))
    lossless_12bit = bytearray(write_raster(tmp_path / "g.jpg", radiograph(), quality=90).read_bytes())
    frame = lossless_12bit.index(b"\xff\xc0")
    lossless_12bit[frame + 1], lossless_12bit[frame + 4] = 0xC3, 12  # claims process 14, 12 bits: not simplejpeg's
    assert decode_scaled(bytes(lossless_12bit), 16, 1) is None
    with pytest.raises(LtvError, match="not an image format Pillow can read"):  # nor can Pillow: a per-file failure
        load_image(str(write_bytes(tmp_path / "l.jpg", lossless_12bit)), 16, 1)
    truncated = write_bytes(tmp_path / "t.jpg", (tmp_path / "g.jpg").read_bytes()[:300])
    assert decode_scaled(truncated.read_bytes(), 16, 1) is None  # damaged: Pillow decides and reports
    with pytest.raises(OSError):
        load_image(str(truncated), 16, 1)
    monkeypatch.setitem(sys.modules, "simplejpeg", None)  # not installed: Pillow's draft decodes everything
    assert decode_scaled((tmp_path / "g.jpg").read_bytes(), 16, 1) is None
    np.testing.assert_array_equal(load_image(str(tmp_path / "g.jpg"), 16, 1),
                                  load_image(str(tmp_path / "g.jpg"), 16, 1, jpeg="draft"))


def write_bytes(path, data) -> object:
    path.write_bytes(bytes(data))
    return path


# ----------------------------------------------------------------------------- --device


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_line(cli, tmp_path):
    source = write_mimic(tmp_path / "src")
    result = cli("ingest", "mimic", *source.args(), "--out", tmp_path / "ds", "--device", "cuda", ok=False)
    assert error_line(result) == "error: --device cuda: no CUDA device is available here (use cpu or auto)"
    assert not (tmp_path / "ds").exists()
    assert "--device 'gpu'" in error_line(cli("ingest", "mimic", *source.args(), "--out", tmp_path / "ds",
                                              "--device", "gpu", ok=False))


def test_a_cpu_ingest_does_not_import_torch():
    """The ingest modules and a CPU ingest start without torch: it is imported only for --device cuda/auto."""
    code = ("import sys, ltvcli.ingest.mimic, ltvcli.ingest.openi, ltvcli.ingest.table\n"
            "from ltvcli.ingest.images import image_decoding\n"
            "image_decoding('cpu', 0)\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
