"""Shared fixtures: a CLI runner and tiny generated datasets built through the public API."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

os.environ.setdefault("OMP_NUM_THREADS", "2")

from ltvcli.cli import app  # noqa: E402
from ltvcli.dataset import DatasetSpec, LabelSet, build_dataset  # noqa: E402


class Cli:
    """Runs ``ltv`` in-process, exactly as the console script does (same Typer app)."""

    def __init__(self):
        self.runner = CliRunner()

    def __call__(self, *args: str | Path, ok: bool = True):
        result = self.runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        if ok and result.exit_code != 0:
            raise AssertionError(f"ltv {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}")
        return result


@pytest.fixture
def cli() -> Cli:
    return Cli()


def make_dataset(
    out: Path,
    *,
    task: str = "multilabel",
    n: int = 48,
    n_classes: int = 3,
    label_sets: int = 3,
    size: int = 16,
    channels: int = 1,
    noise: tuple[float, ...] | None = None,
    seed: int = 0,
    splits: tuple[float, float] = (0.6, 0.2),
    force: bool = False,
):
    """A learnable toy dataset: class c is drawn as a bright block in region c of the image.

    Label set m flips each label with probability ``noise[m]``; ground truth is
    the clean label for every split.
    """
    rng = np.random.default_rng(seed)
    noise = noise if noise is not None else tuple(0.1 * m for m in range(label_sets))
    if task == "multilabel":
        truth = (rng.random((n, n_classes)) < 0.4).astype(np.int8)
    else:
        truth = rng.integers(0, n_classes, n).astype(np.int16)
    pixels = rng.integers(0, 40, (n, size, size) + ((3,) if channels == 3 else ()), dtype=np.uint8)
    band = size // n_classes
    for i in range(n):
        present = np.flatnonzero(truth[i]) if task == "multilabel" else [truth[i]]
        for c in present:
            pixels[i, c * band:(c + 1) * band, :] = 220
    sets = []
    for m in range(label_sets):
        if task == "multilabel":
            flip = rng.random(truth.shape) < noise[m]
            sets.append(np.where(flip, 1 - truth, truth).astype(np.int8))
        else:
            flip = rng.random(n) < noise[m]
            sets.append(np.where(flip, (truth + rng.integers(1, n_classes, n)) % n_classes, truth).astype(np.int16))
    labels = np.stack(sets, axis=1)
    n_train, n_val = int(n * splits[0]), int(n * splits[1])
    split = ["train"] * n_train + ["validate"] * n_val + ["test"] * (n - n_train - n_val)
    manifest = pd.DataFrame({"image_id": [f"img{i:04d}" for i in range(n)], "split": split, "view": "PA",
                             "source": ""})
    spec = DatasetSpec(
        task=task,
        classes=[f"class{c}" for c in range(n_classes)],
        manifest=manifest,
        label_sets=[LabelSet(name=f"set{m}", labeller=f"set{m}") for m in range(label_sets)],
        labels=labels,
        ground_truth=truth,
        pixels=pixels,
        source={"name": "generated"},
    )
    return build_dataset(spec, out, size=size, channels=channels, force=force)


@pytest.fixture
def tiny_dataset(tmp_path: Path):
    """A 48-image multilabel dataset with three label sets of rising noise."""
    return make_dataset(tmp_path / "tiny")
