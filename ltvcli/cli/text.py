"""``ltv embed-reports``: one report-text embedding per image, stored in the dataset folder."""

from __future__ import annotations

from pathlib import Path

import typer

from ltvcli.cli.app import app, command
from ltvcli.cli.choices import DEVICES, POOLINGS, choice
from ltvcli.errors import LtvError
from ltvcli.outputs import DATASET, check_output


@command(app, "embed-reports")
def embed_reports_command(
    dataset: Path = typer.Argument(..., help="A dataset folder with report text (reports.csv or report files)."),
    model: Path = typer.Option(None, "--model", help="Folder of a Hugging Face BERT-like model saved on disk "
                                                     "(e.g. BioBERT); nothing is downloaded."),
    embeddings: Path = typer.Option(None, "--embeddings", help="Use embeddings made elsewhere instead: .csv, "
                                                               ".parquet, .npz, or .npy with --ids."),
    ids: Path = typer.Option(None, "--ids", help="With a .npy --embeddings file: CSV with the id of each row."),
    pooling: str = typer.Option("cls", metavar=choice(POOLINGS),
                                help="cls: the [CLS] token of the last layer; mean: mean of its tokens."),
    batch_size: int = typer.Option(32, "--batch-size", help="Reports per forward pass."),
    max_length: int = typer.Option(512, "--max-length", help="Reports are truncated to this many tokens."),
    device: str = typer.Option("auto", metavar=choice(DEVICES), help="auto (GPU when there is one), cuda or cpu."),
) -> None:
    """Embed each image's report with a BERT-like model (or import vectors) into text_embeddings.npy."""
    from ltvcli.dataset import Dataset
    from ltvcli.text import embed_reports, import_embeddings
    from ltvcli.text.store import ARRAY_FILE

    if (model is None) == (embeddings is None):
        raise LtvError("give exactly one of --model PATH (compute) or --embeddings FILE (import)")
    if ids is not None and embeddings is None:
        raise LtvError("--ids goes with a .npy --embeddings file, not with --model")
    ds = Dataset.open(dataset)
    check_output(ds.path, DATASET, inputs=[model, embeddings, ids], reuse=True, parameter="dataset")
    if model is not None:
        meta = embed_reports(ds, model, batch_size=batch_size, device=device, pooling=pooling, max_length=max_length)
    else:
        meta = import_embeddings(ds, embeddings, ids=ids)
    how = f"{meta['pooling']} pooling" if meta["source"] == "model" else "imported"
    typer.echo(f"{ds.path / ARRAY_FILE}: {len(ds)} images x {meta['dim']} dims ({how}), "
               f"{meta['missing']} without an embedding")
