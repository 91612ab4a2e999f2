"""New labels for a dataset: a label layer over its image cache vs a full copy of the folder.

Generates a dataset (``tests/conftest.make_dataset``) of N RGB images, then
writes simulated label sets for it twice: as ``ltv simulate`` does now (a
label layer, :func:`ltvcli.dataset.layers.build_layer`) and as it did before
(every array, the image cache included, written again with ``build_dataset``).
Prints seconds and bytes written for each, and their ratios; then opens the
layer's pixels, which checks the base cache's fingerprint, and times that.

    python benchmarks/bench_layers.py --images 20000 --size 64
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import make_dataset  # noqa: E402
from ltvcli.console import set_verbosity  # noqa: E402
from ltvcli.dataset import Dataset, DatasetSpec, LabelSet, build_dataset  # noqa: E402
from ltvcli.dataset.layers import build_layer  # noqa: E402
from ltvcli.simulate import annotator_matrices, draw_labels  # noqa: E402


def simulated_spec(source: Dataset, seed: int) -> DatasetSpec:
    """Five simulated annotators (HS, SF, OC, AD, AVG at 30 %) over ``source``'s images, as ``ltv simulate``."""
    named = annotator_matrices(["HS", "SF", "OC", "AD", "AVG"], source, 0.3)
    rng = np.random.default_rng(seed)
    truth = source.ground_truth.astype(np.int64)
    labels = np.stack([draw_labels(truth, m, rng) for m in named.values()], axis=1).astype(source.labels.dtype)
    return DatasetSpec(task=source.task, classes=source.classes, manifest=source.manifest,
                       label_sets=[LabelSet(name, name) for name in named], labels=labels,
                       ground_truth=source.ground_truth, source={"name": "bench"})


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    set_verbosity(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = make_dataset(root / "base", task="multiclass", n=args.images, n_classes=10, label_sets=1,
                              size=args.size, channels=3)
        spec = simulated_spec(source, seed=0)
        copy = timed(lambda: build_dataset(DatasetSpec(**{**vars(spec), "pixels": source.images}), root / "copy",
                                           size=source.image_size, channels=source.channels))
        layer = timed(lambda: build_layer(spec, root / "layer", over=source))
        opened = timed(lambda: Dataset.open(root / "layer").images)
        sizes = {name: folder_bytes(root / name) for name in ("copy", "layer")}
        cache = source.images.nbytes
    print(f"{args.images} images of {args.size}x{args.size}x3 (image cache {cache / 1e6:.1f} MB):\n")
    print("| written as | seconds | MB written |")
    print("|---|---|---|")
    print(f"| full copy (before) | {copy:.2f} | {sizes['copy'] / 1e6:.1f} |")
    print(f"| label layer | {layer:.2f} | {sizes['layer'] / 1e6:.2f} |")
    print(f"| ratio layer / copy | {layer / copy:.3f} | {sizes['layer'] / sizes['copy']:.4f} |")
    print(f"\nopening the layer's pixels (fingerprint check): {opened * 1000:.0f} ms")


if __name__ == "__main__":
    main()
