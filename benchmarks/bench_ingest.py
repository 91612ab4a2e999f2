"""Ingest speed: images/s of each image decoder on MIMIC-like sources, old and new side by side in one run.

Generates a MIMIC-CXR layout in a temporary folder (the test fixture writer
``tests/helpers_ingest.write_mimic``) with chest-sized 2500x3000 images:
12-bit uncompressed DICOM and 8-bit quality-95 JPG, then times the image part
of the ingest (``build_dataset`` on the parsed spec, as ``ltv ingest mimic``
runs it; worker-pool start-up included, as for a user) for every decoder:

* ``dcm uncompressed``: 12-bit DICOM through pydicom;
* ``jpg draft (old)``: Pillow's reduced-size decoding, ltv's JPEG decoder before simplejpeg;
* ``jpg full (reference)``: full-size decoding, what every fast path is compared with;
* ``jpg scaled (new)``: libjpeg-turbo's scaled decoding through simplejpeg (``--device cpu``);
* ``jpg batch``: the batched decoder of ``--device cuda`` (torchvision's decode_jpeg), on ``--device``;
* ``dcm <codec>`` (``--codec-images``): compressed DICOM, one row per transfer syntax, in this process.

``images/s`` is wall-clock; ``per CPU-s`` is images per second of CPU time
(this process plus its finished workers), i.e. the speed of one core, which
other jobs on a shared machine disturb far less than wall-clock time. ``x
old`` and ``x old CPU`` are a row's speeds over the old decoder's with the
same workers. ``MAD`` is the mean absolute difference, in grey levels,
between a decoder's cache images and the reference decode's on the first 16
images. Rows run interleaved ``--repeats`` times and the fastest round of
each is kept (on a shared machine the least disturbed one).

    python benchmarks/bench_ingest.py --images 160 --workers 0,2
    python benchmarks/bench_ingest.py --device cuda --images 10000 --distinct 100 --workers 16

With ``--device cuda`` only the JPG rows run (scaled on the CPU with each
``--workers`` count, and batch on the GPU); it stops at once with one line
when no CUDA device is visible. ``--formats jpg`` leaves the DICOM rows out on
the CPU too (they need pydicom). ``--distinct K`` writes K different images
and hard-links the others to them, so 10,000 sources take K images' time and
disk (the decoder still reads and decodes every file). ``--film ROWSxCOLUMNS``
sets the source size (smaller films for a quick check); ``--json FILE`` also
writes the rows as JSON (the GPU suite, ``benchmarks/gpu_suite.py``, reads it).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers_ingest import MimicImage, dicom_id, encode_dicom, write_mimic  # noqa: E402
from ltvcli.atomic import write_json  # noqa: E402
from ltvcli.console import set_verbosity  # noqa: E402
from ltvcli.dataset import build_dataset  # noqa: E402
from ltvcli.errors import OptionError  # noqa: E402
from ltvcli.ingest.images import load_image, load_image_full  # noqa: E402
from ltvcli.ingest.mimic import mimic_spec  # noqa: E402

FILM = "3000x2500"  # rows x columns, a typical CR chest film
MAD_IMAGES = 16


@dataclass
class Row:
    source: str
    decoding: str
    workers: int | None  # None: decodes in this process in batches
    decode: Callable = load_image
    batch: Callable | None = None
    seconds: float = float("inf")
    cpu_seconds: float = float("inf")
    images: np.ndarray | None = None
    startup: float | None = None  # the batch decoder's one-off set-up (CUDA context, nvJPEG), not in its row


def chest_like(index: int, shape: tuple[int, int], noise: float = 6.0) -> np.ndarray:
    """A smooth body-and-lungs shape plus film noise, so the JPG compresses like a radiograph."""
    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    yy, xx = yy / shape[0] - 0.5, xx / shape[1] - 0.5
    body = np.exp(-(xx ** 2 / 0.08 + yy ** 2 / 0.2))
    lungs = np.exp(-((np.abs(xx) - 0.17) ** 2 / 0.01 + (yy + 0.05) ** 2 / 0.06))
    image = 60 + 150 * body - 90 * lungs + rng.normal(0, noise, shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def film_shape(text: str) -> tuple[int, int]:
    """``ROWSxCOLUMNS`` -> (rows, columns)."""
    try:
        rows, columns = (int(side) for side in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ROWSxCOLUMNS, e.g. {FILM}") from None
    return rows, columns


def make_source(root: Path, n: int, distinct: int, image_format: str, noise: float, shape: tuple[int, int]):
    """A MIMIC layout of ``n`` images of which ``distinct`` differ; the others are hard links to them."""
    rows = [MimicImage(dicom_id(i), f"1{i:07d}", f"5{i:07d}", "PA", "train") for i in range(n)]
    pixels = functools.partial(chest_like, noise=noise)
    if distinct >= n:
        return write_mimic(root, images=rows, labels={}, image_format=image_format, size=shape,
                           pixels=pixels, reports=False)
    originals = write_mimic(root / "distinct", images=rows[:distinct], labels={}, image_format=image_format,
                            size=shape, pixels=pixels, reports=False)
    source = write_mimic(root / "all", images=rows, labels={}, image_format=image_format, size=(8, 8),
                         reports=False)
    big = sorted(originals.images.rglob("*.*"))
    for i, path in enumerate(sorted(source.images.rglob("*.*"))):
        path.unlink()
        os.link(big[i % distinct], path)
    return source


def encode_source(source, syntax: str, options: dict) -> None:
    """Re-encode every DICOM of ``source`` in place in the transfer syntax ``syntax``."""
    for path in source.images.rglob("*.dcm"):
        encode_dicom(path, syntax, **options)


def time_ingest(source, out: Path, row: Row, size: int) -> tuple[float, float, np.ndarray]:
    """Wall seconds, CPU seconds (this process and its finished workers) and the first cache images."""
    spec = mimic_spec(**source.kwargs())
    before, start = os.times(), time.perf_counter()
    dataset = build_dataset(spec, out, size=size, channels=1, decode=row.decode, decode_batch=row.batch,
                            workers=row.workers or 0)
    elapsed, after = time.perf_counter() - start, os.times()
    cpu = sum(after[k] - before[k] for k in range(4))  # user, system, children's user, children's system
    images = np.array(dataset.images[:MAD_IMAGES])
    shutil.rmtree(out)
    return elapsed, cpu, images


def cuda_ready(device: str) -> None:
    """Stop with one line when ``--device cuda`` has no CUDA device to run on."""
    from ltvcli.runtime.device import resolve_device

    try:
        resolve_device(device)
    except OptionError as error:
        sys.exit(f"error: --{error}")


def plan_rows(args, workers: list[int]) -> list[Row]:
    from ltvcli.ingest.batch import BatchDecoder

    rows = []
    if args.device == "cpu":
        rows += [Row("dcm", "uncompressed", w) for w in workers]
        rows += [Row("jpg", "draft (old)", w, functools.partial(load_image, jpeg="draft")) for w in workers]
        rows += [Row("jpg", "full (reference)", w, load_image_full) for w in workers]
    rows += [Row("jpg", "scaled (new)", w) for w in workers]
    rows.append(Row("jpg", f"batch {args.device}", None, batch=BatchDecoder(args.device)))
    return rows


def codec_rows(tmp: Path, n: int, noise: float, shape: tuple[int, int]) -> list[tuple[Row, object]]:
    """One row per compressed transfer syntax, each on its own copy of ``n`` 12-bit DICOMs (decoded in-process)."""
    from pydicom import uid

    syntaxes = {"RLE": (uid.RLELossless, {}), "JPEG Lossless SV1": (uid.JPEGLosslessSV1, {}),
                "JPEG-LS": (uid.JPEGLSLossless, {}), "JPEG 2000 lossless": (uid.JPEG2000Lossless, {}),
                "JPEG 2000 lossy": (uid.JPEG2000, {"j2k_cr": [20]})}
    rows = []
    for name, (syntax, options) in syntaxes.items():
        source = make_source(tmp / name.replace(" ", "_"), n, n, "dcm", noise, shape)
        encode_source(source, syntax, options)
        rows.append((Row("dcm", name, 0), source))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="images per source format")
    parser.add_argument("--workers", default="0,1,2", help="worker counts to time, comma-separated")
    parser.add_argument("--size", type=int, default=256, help="cache image side")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cpu: every CPU decoder; cuda: the scaled CPU rows and the batch decoder on the GPU")
    parser.add_argument("--distinct", type=int, default=0, help="different images per format (default: all)")
    parser.add_argument("--noise", type=float, default=6.0, help="film noise (grey levels); it sets the JPG size")
    parser.add_argument("--codec-images", type=int, default=0, help="compressed DICOMs per transfer syntax row")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds; the fastest of each row is kept")
    parser.add_argument("--formats", default="dcm,jpg",
                        help="source formats timed on the CPU, comma-separated (--device cuda: jpg only)")
    parser.add_argument("--film", type=film_shape, default=film_shape(FILM), help=f"source size (default {FILM})")
    parser.add_argument("--json", type=Path, help="also write the rows, with the settings, to this JSON file")
    args = parser.parse_args()
    if args.device == "cuda":
        cuda_ready(args.device)
    workers = [int(w) for w in args.workers.split(",")]
    distinct = args.distinct or args.images
    formats = ("jpg",) if args.device == "cuda" else tuple(args.formats.split(","))
    if "jpg" not in formats or not set(formats) <= {"dcm", "jpg"}:
        sys.exit(f"error: --formats {args.formats}: expected jpg or dcm,jpg")
    set_verbosity(0)
    with tempfile.TemporaryDirectory(prefix="ltv-bench-") as tmp:
        tmp = Path(tmp)
        print(f"generating {args.images} {' and '.join(formats)} sources of {args.film[0]}x{args.film[1]} pixels "
              f"(rows x columns; {distinct} distinct) in {tmp} ...", file=sys.stderr)
        sources = {fmt: make_source(tmp / fmt, args.images, distinct, fmt, args.noise, args.film) for fmt in formats}
        rows = [(row, sources[row.source]) for row in plan_rows(args, workers) if row.source in formats]
        if args.codec_images:
            rows += codec_rows(tmp, args.codec_images, args.noise, args.film)
        jpg_bytes = np.mean([p.stat().st_size for p in sources["jpg"].images.rglob("*.jpg")])
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.images} images per row "
              f"({args.codec_images} per DICOM codec row), JPG {jpg_bytes / 1e6:.2f} MB each, cache {args.size}px, "
              f"best of {args.repeats}; scaled JPEG decoding by {scaled_decoder()}")
        for row, source in rows:
            if row.batch is not None:  # CUDA context and decoder set-up happen once per process, not per ingest
                start = time.perf_counter()
                row.batch(list(mimic_spec(**source.kwargs()).manifest["source"][:2]), args.size, 1)
                row.startup = time.perf_counter() - start
                print(f"{row.decoding}: start-up {row.startup:.2f} s (not in its row)")
        for _ in range(args.repeats):
            for row, source in rows:
                seconds, cpu, row.images = time_ingest(source, tmp / "out", row, args.size)
                row.seconds, row.cpu_seconds = min(row.seconds, seconds), min(row.cpu_seconds, cpu)
        records = report(rows, args.images, args.codec_images, reference_images(sources["jpg"], args.size))
        print(f"load average after the run {os.getloadavg()[0]:.1f}")
    if args.json:
        write_json(args.json, {"images": args.images, "distinct": distinct, "film": list(args.film),
                               "jpg_mb": jpg_bytes / 1e6, "size": args.size, "device": args.device,
                               "repeats": args.repeats, "cpus": os.cpu_count(), "scaled_decoder": scaled_decoder(),
                               "rows": records})


def scaled_decoder() -> str:
    """What decodes the ``scaled (new)`` rows here: simplejpeg, or Pillow's draft mode where it cannot be imported."""
    try:
        importlib.import_module("simplejpeg")
    except ImportError:
        return "Pillow draft (simplejpeg not installed)"
    return "simplejpeg"


def reference_images(source, size: int) -> np.ndarray:
    """The reference decode (full size, then the same resize) of the first images, in dataset order."""
    sources = mimic_spec(**source.kwargs()).manifest["source"][:MAD_IMAGES]
    return np.stack([load_image_full(path, size, 1) for path in sources])


def report(rows: list[tuple[Row, object]], n: int, codec_n: int, reference: np.ndarray) -> list[dict]:
    """Print the table; return its rows as records (``None`` where the table leaves a cell blank)."""
    old = {row.workers: row for row, _ in rows if row.decoding == "draft (old)"}
    records = []
    print(f"{'source':<8}{'decoding':<20}{'workers':>8}{'seconds':>9}{'images/s':>10}{'per CPU-s':>10}"
          f"{'x old':>7}{'x old CPU':>10}{'MAD':>6}")
    for row, _ in rows:
        count = codec_n if row.source == "dcm" and row.decoding != "uncompressed" else n
        ratio = cpu_ratio = mad = None
        if row.source == "jpg" and row.workers in old:
            ratio = old[row.workers].seconds / row.seconds
            cpu_ratio = old[row.workers].cpu_seconds / row.cpu_seconds
        if row.source == "jpg":
            mad = float(np.abs(row.images.astype(int) - reference.astype(int)).mean())
        workers = "batch" if row.workers is None else str(row.workers)
        print(f"{row.source:<8}{row.decoding:<20}{workers:>8}{row.seconds:>9.2f}{count / row.seconds:>10.1f}"
              f"{count / row.cpu_seconds:>10.1f}{_cell(ratio, 7)}{_cell(cpu_ratio, 10)}{_cell(mad, 6)}", flush=True)
        records.append({"source": row.source, "decoding": row.decoding, "workers": workers, "images": count,
                        "seconds": row.seconds, "images_per_s": count / row.seconds,
                        "per_cpu_s": count / row.cpu_seconds, "x_old": ratio, "x_old_cpu": cpu_ratio, "mad": mad,
                        "startup_s": row.startup})
    return records


def _cell(value: float | None, width: int) -> str:
    return " " * width if value is None else f"{value:>{width}.2f}"


if __name__ == "__main__":
    main()
