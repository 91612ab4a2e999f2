"""Embedding report text with a Hugging Face BERT-like model from disk (``ltv embed-reports --model``).

The paper feeds a 768-dimensional BioBERT vector of the report next to the
image feature. Here that vector is computed once per *distinct* report text
(MIMIC has one report per study and often several images per study), in
batches, on the GPU when there is one, and copied to every image that shares
the text.

Nothing is downloaded: the model folder is loaded with
``local_files_only=True`` under ``HF_HUB_OFFLINE=1``, so a hospital machine
without internet access behaves the same as a laptop.

Interruption safety follows ``ltvcli/dataset/build.py``: the vectors go into
a memory-mapped ``vectors.npy`` in ``DATASET/text_embeddings.partial/`` and a
per-report status array is saved atomically after every chunk of batches. Re-running
the same command (same model files, reports, pooling and truncation, as
recorded by a fingerprint in ``plan.json``) embeds only the reports not done
yet; the finished vectors are then stored and the partial folder removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.format import open_memmap

from ltvcli import __version__, atomic
from ltvcli.console import log, track, warn
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError, OptionError
from ltvcli.text.store import save_text_embeddings
from ltvcli.runtime.device import resolve_device
from ltvcli.runtime.hub import offline, quiet_loading

POOLINGS = ("cls", "mean")
PARTIAL_DIR = "text_embeddings.partial"
#: Distinct reports per saved step (rounded to whole batches). Saving costs ~10 ms on a MIMIC-sized array,
#: as much as a GPU batch, so progress is saved per chunk, not per batch; an interruption loses one chunk at most.
CHUNK = 1024


@dataclass
class ReportEncoder:
    """A tokenizer and encoder on a device, turning a batch of texts into one vector per text."""

    tokenizer: Any
    model: torch.nn.Module
    device: torch.device
    pooling: str
    max_length: int

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 [len(texts), dim]: the pooled last hidden layer of each (truncated) text."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        return pool(hidden, batch["attention_mask"], self.pooling).float().cpu().numpy()


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """``cls``: the first token ([CLS]), as BioBERT features are usually taken; ``mean``: mean over real tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def load_encoder(model_dir: str | Path, *, device: str = "auto", pooling: str = "cls",
                 max_length: int = 512) -> ReportEncoder:
    """Load a tokenizer and model saved with ``save_pretrained`` in ``model_dir``; never downloads."""
    model_dir = Path(model_dir)
    if pooling not in POOLINGS:
        raise OptionError("pooling", f"{pooling!r}: expected one of {', '.join(POOLINGS)}")
    if not model_dir.is_dir():
        raise OptionError("model", f"{model_dir}: no such folder; expected a Hugging Face model saved on disk "
                                   "(config.json, weights and tokenizer files); nothing is downloaded")
    torch_device = resolve_device(device)
    with offline():
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise LtvError("embedding reports with a model needs the optional text extra: "
                           "pip install 'ltv[text]'") from None
        try:
            with quiet_loading():
                tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
                model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise OptionError("model", f"{model_dir}: cannot load a tokenizer and model from this folder "
                                       f"({str(exc).strip().splitlines()[0]})") from None
    _check_max_length(model, tokenizer, max_length, model_dir)
    model = model.to(device=torch_device, dtype=torch.float32).eval()
    return ReportEncoder(tokenizer, model, torch_device, pooling, max_length)


def _check_max_length(model: torch.nn.Module, tokenizer: Any, max_length: int, model_dir: Path) -> None:
    """Refuse a ``max_length`` the model has no position embeddings for (it would fail mid-run)."""
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limit = min((int(v) for v in limits if v is not None and v < 1_000_000), default=None)
    if max_length < 2:
        raise OptionError("max_length", f"must be at least 2 tokens ([CLS] and [SEP]), got {max_length}")
    if limit is not None and max_length > limit:
        raise OptionError("max_length", f"{max_length}: the model in {model_dir} takes at most {limit} tokens")


def embed_reports(dataset: Dataset | str | Path, model: str | Path, *, batch_size: int = 32, device: str = "auto",
                  pooling: str = "cls", max_length: int = 512) -> dict:
    """Embed every image's report with the model in ``model`` and store the vectors in the dataset folder.

    Returns the stored metadata (see :func:`ltvcli.text.store.save_text_embeddings`).
    Images without a report (or with a blank one) get a NaN row and are counted.
    """
    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    if batch_size < 1:
        raise OptionError("batch_size", f"must be at least 1, got {batch_size}")
    encoder = load_encoder(model, device=device, pooling=pooling, max_length=max_length)
    distinct, row_of = distinct_reports(ds.report_texts())
    if not distinct:
        raise LtvError(f"{ds.path}: no image has a report (no reports.csv text and no report files in the "
                       "manifest's report column); nothing to embed")
    missing = int((row_of < 0).sum())
    log(f"{len(ds)} images, {len(distinct)} distinct reports to embed on {encoder.device}"
        + (f", {missing} images without a report" if missing else ""))
    staging = ds.path / PARTIAL_DIR
    fingerprint = _fingerprint(distinct, Path(model), pooling, max_length)
    vectors = _embed_resumable(encoder, distinct, staging, fingerprint, batch_size)
    full = np.full((len(ds), vectors.shape[1]), np.nan, dtype=np.float32)
    has_report = row_of >= 0
    full[has_report] = vectors[row_of[has_report]]
    meta = save_text_embeddings(ds, full, source="model", model=str(Path(model).resolve()), pooling=pooling,
                                max_length=max_length)
    shutil.rmtree(staging)
    if missing:
        warn(f"{missing} of {len(ds)} images have no report; their embedding rows are NaN")
    return meta


def distinct_reports(texts: list[str | None]) -> tuple[list[str], np.ndarray]:
    """The distinct non-blank texts, longest first, and for each image its text's position (-1 = none).

    Longest first groups texts of similar length into a batch (little padding)
    and puts the batch that needs the most memory first, so a too-large
    ``batch_size`` fails at once rather than hours into the run.
    """
    present = sorted({t for t in texts if t is not None and t.strip()}, key=lambda t: (-len(t), t))
    position = {text: i for i, text in enumerate(present)}
    row_of = np.array([position.get(t, -1) for t in texts], dtype=np.int64)
    return present, row_of


def _fingerprint(texts: list[str], model_dir: Path, pooling: str, max_length: int) -> str:
    """Identify a plan of work: a partial folder is resumed only with the same texts, model files and options."""
    digest = hashlib.sha256()
    digest.update(f"{pooling}|{max_length}|{len(texts)}\n".encode())
    for file in sorted(p for p in model_dir.iterdir() if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    for text in texts:
        digest.update(text.encode("utf-8", errors="replace") + b"\0")
    return digest.hexdigest()


def _embed_resumable(encoder: ReportEncoder, texts: list[str], staging: Path, fingerprint: str,
                     batch_size: int) -> np.ndarray:
    """Embed the texts not yet done in ``staging``, saving progress after every chunk; return all vectors."""
    shape = (len(texts), encoder.dim)
    done = _open_staging(staging, fingerprint, shape)
    vectors_file = staging / "vectors.npy"
    vectors = open_memmap(vectors_file, mode="r+" if vectors_file.exists() else "w+", dtype=np.float32, shape=shape)
    pending = np.flatnonzero(~done)
    chunk_size = batch_size * max(1, CHUNK // batch_size)
    with track(len(pending), "embedding reports") as advance:
        for start in range(0, len(pending), chunk_size):
            chunk = pending[start:start + chunk_size]
            for offset in range(0, len(chunk), batch_size):
                rows = chunk[offset:offset + batch_size]
                vectors[rows] = _encode(encoder, [texts[i] for i in rows], batch_size)
                advance(len(rows))
            vectors.flush()  # the vectors reach the disk before the status that claims them
            done[chunk] = True
            atomic.write_npy(staging / "status.npy", done)
    result = np.array(vectors)
    del vectors
    return result


def _encode(encoder: ReportEncoder, texts: list[str], batch_size: int) -> np.ndarray:
    """One batch; running out of GPU memory becomes advice, since the progress so far is kept."""
    try:
        return encoder.encode(texts)
    except torch.cuda.OutOfMemoryError:
        raise LtvError(f"out of GPU memory with `batch_size` {batch_size}; re-run with a smaller one "
                       "(the reports embedded so far are kept)") from None


def _open_staging(staging: Path, fingerprint: str, shape: tuple[int, int]) -> np.ndarray:
    """The per-text done flags of ``staging``; resumed when its plan matches, otherwise started afresh."""
    plan_file = staging / "plan.json"
    if staging.exists():
        try:
            same_plan = json.loads(plan_file.read_text())["fingerprint"] == fingerprint
            done = np.load(staging / "status.npy")
            same_plan = same_plan and done.shape == shape[:1] and np.load(
                staging / "vectors.npy", mmap_mode="r").shape == shape
        except (OSError, ValueError, KeyError):
            same_plan = False
        if same_plan:
            log(f"resuming in {staging}: {int(done.sum())} of {shape[0]} distinct reports already embedded")
            return done
        log(f"discarding {staging}: it was started with another model, options or reports")
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    atomic.write_json(plan_file, {"fingerprint": fingerprint, "ltv_version": __version__})
    done = np.zeros(shape[0], dtype=bool)
    atomic.write_npy(staging / "status.npy", done)
    return done
