"""Generated image features and crowds for the feature tests: files as a site would bring them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ltvcli.dataset import Dataset


def informative_features(truth: np.ndarray, n_classes: int, dim: int, seed: int = 0,
                         noise: float = 0.5) -> np.ndarray:
    """float32 [N, dim] vectors from which ``truth`` (class ids [N], or 0/1 findings [N, C]) can be read linearly."""
    rng = np.random.default_rng(seed)
    codes = np.eye(n_classes)[truth] if truth.ndim == 1 else truth.astype(float)
    mixing = rng.normal(size=(n_classes, dim))
    return (codes @ mixing * 2 + rng.normal(scale=noise, size=(len(truth), dim)) + 5).astype(np.float32)


def features_of(dataset: Dataset, dim: int = 8, seed: int = 0) -> np.ndarray:
    """Features that carry ``dataset``'s ground truth, one row per image in images.csv order."""
    truth = np.asarray(dataset.ground_truth)
    return informative_features(truth, len(dataset.classes), dim, seed)


def write_npz(path: Path, ids, vectors: np.ndarray, key: str = "features") -> Path:
    np.savez(path, **{key: vectors, "image_id": np.array([str(i) for i in ids], dtype=str)})
    return path


def write_table(path: Path, ids, vectors: np.ndarray) -> Path:
    frame = pd.DataFrame(vectors, columns=[f"f{j}" for j in range(vectors.shape[1])])
    frame.insert(0, "image_id", [str(i) for i in ids])
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


@dataclass
class Crowd:
    """A generated crowd in the answers-matrix layout: per split an answers, a truth and a features file."""

    root: Path
    truth: dict[str, np.ndarray]
    answers: np.ndarray  # [train items, workers]

    def args(self, *, features: bool = True, splits=("train", "validate", "test")) -> list:
        """``ltv ingest answers`` arguments for these files (answers for train only, as LabelMe has)."""
        args = ["--answers", f"train={self.root / 'answers.txt'}"]
        for split in splits:
            args += ["--truth", f"{split}={self.root / f'truth_{split}.txt'}"]
            if features:
                args += ["--features", f"{split}={self.root / f'features_{split}.npy'}"]
        return args


def write_crowd(root: Path, *, items=(60, 20, 20), n_classes: int = 3, accuracy=(0.95, 0.5, 0.4), dim: int = 6,
                answered: float = 1.0, seed: int = 0) -> Crowd:
    """Workers of the given accuracies (wrong answers uniform over the other classes), each answering a share
    ``answered`` of the train items (-1 elsewhere); truth and informative features for every split."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    truth = {split: rng.integers(0, n_classes, count) for split, count in zip(("train", "validate", "test"), items)}
    columns = []
    for p in accuracy:
        wrong = (truth["train"] + rng.integers(1, n_classes, items[0])) % n_classes
        said = np.where(rng.random(items[0]) < p, truth["train"], wrong)
        columns.append(np.where(rng.random(items[0]) < answered, said, -1))
    answers = np.stack(columns, axis=1)
    np.savetxt(root / "answers.txt", answers, fmt="%d")
    everything = informative_features(np.concatenate(list(truth.values())), n_classes, dim, seed)
    start = 0
    for split, labels in truth.items():
        np.savetxt(root / f"truth_{split}.txt", labels, fmt="%d")
        np.save(root / f"features_{split}.npy", everything[start:start + len(labels)])
        start += len(labels)
    return Crowd(root, truth, answers)
