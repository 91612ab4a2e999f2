"""Ingest speed: images/s for MIMIC-like DICOM and JPG sources, per worker count, reduced vs full decoding.

Generates a MIMIC-CXR layout in a temporary folder (the test fixture writer
``tests/helpers_ingest.write_mimic``, with chest-sized 2500x3000 images:
12-bit uncompressed DICOM, or 8-bit quality-95 JPG), then times the image
part of the ingest (``build_dataset`` on the parsed spec, as ``ltv ingest
mimic`` runs it) with ``load_image`` (reduced-size JPEG decoding) and
``load_image_full``. Worker pools are started per run, so their start-up is
included, as for a user. Prints one table; run it on an otherwise idle machine.

    python benchmarks/bench_ingest.py --images 24 --workers 0,1,2
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers_ingest import MimicImage, dicom_id, write_mimic  # noqa: E402
from ltvcli.console import set_verbosity  # noqa: E402
from ltvcli.dataset import build_dataset  # noqa: E402
from ltvcli.ingest.images import load_image, load_image_full  # noqa: E402
from ltvcli.ingest.mimic import mimic_spec  # noqa: E402

SOURCE_SHAPE = (3000, 2500)  # rows x columns, a typical CR chest film
#: DICOM has no reduced-size decoding, so it is timed once; JPG with and without Pillow's draft mode.
DECODERS = {"dcm": (("full", load_image),), "jpg": (("reduced", load_image), ("full", load_image_full))}


def chest_like(index: int, shape: tuple[int, int]) -> np.ndarray:
    """A smooth body-and-lungs shape plus film noise, so the JPG compresses like a radiograph."""
    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    yy, xx = yy / shape[0] - 0.5, xx / shape[1] - 0.5
    body = np.exp(-(xx ** 2 / 0.08 + yy ** 2 / 0.2))
    lungs = np.exp(-((np.abs(xx) - 0.17) ** 2 / 0.01 + (yy + 0.05) ** 2 / 0.06))
    image = 60 + 150 * body - 90 * lungs + rng.normal(0, 6, shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_source(root: Path, n: int, image_format: str):
    rows = [MimicImage(dicom_id(i), f"1{i:07d}", f"5{i:07d}", "PA", "train") for i in range(n)]
    return write_mimic(root, images=rows, labels={}, image_format=image_format, size=SOURCE_SHAPE,
                       pixels=chest_like, reports=False)


def time_ingest(source, out: Path, decode, workers: int, size: int) -> float:
    spec = mimic_spec(**source.kwargs())
    start = time.perf_counter()
    build_dataset(spec, out, size=size, channels=1, decode=decode, workers=workers)
    elapsed = time.perf_counter() - start
    shutil.rmtree(out)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="images per source format")
    parser.add_argument("--workers", default="0,1,2", help="worker counts to time, comma-separated")
    parser.add_argument("--size", type=int, default=256, help="cache image side")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    set_verbosity(0)
    with tempfile.TemporaryDirectory(prefix="ltv-bench-") as tmp:
        tmp = Path(tmp)
        print(f"generating {args.images} DICOM and {args.images} JPG images of {SOURCE_SHAPE[1]}x{SOURCE_SHAPE[0]} "
              f"in {tmp} ...", file=sys.stderr)
        sources = {fmt: make_source(tmp / fmt, args.images, fmt) for fmt in ("dcm", "jpg")}
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.images} images per row, "
              f"cache {args.size}px")
        print(f"{'source':<8}{'decoding':<10}{'workers':>8}{'seconds':>10}{'images/s':>10}")
        for fmt, source in sources.items():
            for name, decode in DECODERS[fmt]:
                for w in workers:
                    seconds = time_ingest(source, tmp / "out", decode, w, args.size)
                    print(f"{fmt:<8}{name:<10}{w:>8}{seconds:>10.2f}{args.images / seconds:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
