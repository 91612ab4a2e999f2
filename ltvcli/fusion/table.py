"""The refined-labels table: what ``ltv export-labels`` writes, for a trained run and for label-only fusion alike.

One row per (image, class), long layout::

    image_id, finding, refined, binarised, weight_<label set>, ...

``refined`` is the fused soft label ȳ (a probability; NaN where no label set
labels the image and class), ``binarised`` what a method trains on (0/1, or the
vote's differentiable binarisation ỹ = sigmoid(k (ȳ − T))), and one weight
column per fused label set: its vote weight, NaN for a method without a vote.
A run's export (:mod:`ltvcli.train.export`) and a label-only export
(:mod:`ltvcli.fusion.labelonly`) both build it here, and ``ltv evaluate
--fused`` reads it back, so the three agree on one layout. No torch here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The leading columns, in order (also how an earlier export at ``--out`` is recognised).
COLUMNS = ("image_id", "finding", "refined", "binarised")
WEIGHT_PREFIX = "weight_"


def refined_table(image_ids: np.ndarray, classes: list[str], refined: np.ndarray, binarised: np.ndarray,
                  weights: np.ndarray | None, label_set_names: list[str]) -> pd.DataFrame:
    """The long table of ``n`` images: ``refined``/``binarised`` [n, C], ``weights`` [n, M, C] or None (NaN)."""
    n_classes = len(classes)
    frame = pd.DataFrame({
        "image_id": np.repeat(np.asarray(image_ids, dtype=object), n_classes),
        "finding": np.tile(np.asarray(classes, dtype=object), len(image_ids)),
        "refined": np.asarray(refined, dtype=np.float32).reshape(-1),
        "binarised": np.asarray(binarised, dtype=np.float32).reshape(-1),
    })
    for m, name in enumerate(label_set_names):
        frame[f"{WEIGHT_PREFIX}{name}"] = np.full(len(frame), np.nan, dtype=np.float32) if weights is None \
            else np.asarray(weights[:, m], dtype=np.float32).reshape(-1)
    return frame
