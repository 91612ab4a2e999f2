"""Writing a label layer: new labels for another dataset's images, without copying its pixels.

``ltv simulate`` (simulated annotators) and ``ltv ingest relabels`` (an
expert's answers) change labels only. :func:`build_layer` publishes their
labels as a complete dataset folder -- metadata, manifest, labels, ground
truth -- whose ``image_cache`` entry names the folder holding the pixels
(see :mod:`ltvcli.dataset.cache`). A layer made from a layer names the
original cache, so layers never chain. Every reader goes through
:class:`~ltvcli.dataset.format.Dataset`, so training, export, evaluation and
refinement work on a layer unchanged.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ltvcli import atomic
from ltvcli.console import log
from ltvcli.dataset.build import DatasetSpec, _fresh_staging, _full_manifest, _metadata, _write_arrays
from ltvcli.dataset.cache import CACHE_FILE, IMAGE_CACHE_KEY, image_cache_fingerprint
from ltvcli.dataset.format import Dataset
from ltvcli.outputs import DATASET, check_output


def build_layer(spec: DatasetSpec, out: str | Path, *, over: Dataset, own_images: bool = False,
                force: bool = False) -> Dataset:
    """Publish ``spec``'s labels at ``out`` over the images of ``over`` (same images, row for row).

    ``out`` refers to the folder holding ``over``'s pixels by a path relative
    to itself. With ``own_images`` the cache file is hard-linked into ``out``
    instead (copied where the file system has no hard links): ``ltv ingest
    relabels`` in place replaces the folder that holds the pixels. Written
    in ``OUT.partial`` and renamed onto ``out`` at the end, like an ingest,
    under the same output rules (:func:`ltvcli.outputs.check_output`; an
    existing dataset at ``out`` is replaced only with ``force``). ``over``
    must have images: a label-only dataset has no cache to stand on.
    """
    spec.validate()
    if not np.array_equal(spec.manifest["image_id"].to_numpy(), over.image_ids):
        raise ValueError("a label layer has the images of the dataset it is made over, row for row")
    out = check_output(out, DATASET, inputs=[over.path, over.cache_folder], force=force)
    staging = out.with_name(out.name + ".partial")
    manifest = _full_manifest(spec.manifest)
    meta = _metadata(spec, manifest, over.image_size, over.channels)
    with atomic.writing(out):
        _fresh_staging(staging)  # a layer takes seconds to write: an interrupted one is simply made again
        _write_arrays(spec, manifest, np.ones(len(manifest), dtype=bool), staging, manifest.iloc[:0])
        if own_images:
            _link(over.cache_folder / CACHE_FILE, staging / CACHE_FILE)
        else:
            meta[IMAGE_CACHE_KEY] = {"dataset": os.path.relpath(over.cache_folder, out.resolve()),
                                     "fingerprint": image_cache_fingerprint(over.image_ids, over.images)}
        (staging / "plan.json").unlink()
    atomic.write_json(staging / DATASET.marker, meta)
    check_output(out, DATASET, force=force)  # again: the folder may have appeared meanwhile
    atomic.replace_dir(staging, out, DATASET.marker)
    where = "its own image cache" if own_images else f"the images of {over.cache_folder}"
    log(f"wrote {out} ({meta['n_images']} images, {len(spec.label_sets)} label sets) over {where}")
    return Dataset.open(out)


def _link(source: Path, target: Path) -> None:
    """A hard link of ``source`` at ``target`` (no pixel copied); a copy where hard links are not possible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
