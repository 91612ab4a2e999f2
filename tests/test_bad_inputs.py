"""A corpus of bad and hostile inputs through the CLI: every one must end in one clean line, and touch nothing.

Each case builds its bad input in a folder of its own (next to a shared,
valid "world": sources of every ingest kind, a dataset, a trained run) and
runs one ``ltv`` command in-process, as the console script would. The case
passes when

* the exit status is non-zero, with exactly one ``error: ...`` line that
  names what the case expects (the file, and its line and column where there
  is one) and nothing it forbids (a MIMIC subject id, a full source path);
* there is no traceback;
* no file anywhere in the world or the case folder was created, changed
  (size, modification time) or removed, the output path included: nothing
  half-written, nothing outside the output touched.

A case may instead expect success (``ok=True``): an input that is odd but
legal must give a result, not a crash.

``python tests/test_bad_inputs.py`` runs the corpus outside pytest and
prints the tally the safety issue asks for (cases, clean errors, tracebacks,
silent accepts, files destroyed).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import traceback
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import make_dataset
from helpers_ingest import (CHEXPERT_ORDER, DEFAULT_IMAGES, chexpert_rows, pattern, write_chexpert_csv, write_cifar10,
                            write_csv, write_mimic, write_nih, write_openi_kaggle, write_openi_xml, write_raster)
from helpers_features import write_crowd
from helpers_train import TRAIN_FAST
from ltvcli.cli import app

RANDOM = bytes(np.random.default_rng(13).integers(0, 256, 600, dtype=np.uint8))  # not text, not any format
NOT_UTF8 = b"\xff\xfe\x9c"
SUBJECT = DEFAULT_IMAGES[0].subject  # a MIMIC subject id: must never appear in a message
#: Wording no error line may contain (a doubled word the issue reported).
NEVER_SAID = ["file file"]
#: A valid rules table for ``ltv label-reports --rules``: one mention phrase.
RULES = "kind,finding,phrase,option\nmention,Hernia,hiatal hernia,\n"


# ----------------------------------------------------------------------------- the shared valid world


@dataclass
class World:
    """Valid inputs of every kind; cases copy what they break into their own folder."""

    root: Path

    def __post_init__(self):
        r = self.root
        self.images = r / "table-images"
        for i, name in enumerate(("a.png", "b.png", "sub/c.png", "d.png", "e.png")):
            write_raster(self.images / name, pattern(i))
        write_raster(r / "outside" / "secret.png", pattern(9))  # what a '..' path would reach
        # the long layout (image, labeller, label) needs no column declarations in any ltv version
        self.labels = write_csv(r / "labels.csv", pd.DataFrame({
            "image": ["a.png", "b.png", "sub/c.png", "d.png", "e.png"] * 2, "labeller": ["r1"] * 5 + ["r2"] * 5,
            "label": ["x", "y", "x", "y", "x", "x", "x", "y", "y", "x"]}))
        self.mimic = write_mimic(r / "mimic", gz=False)
        self.kaggle_reports, self.kaggle_projections, self.kaggle_images = write_openi_kaggle(r / "openi-kaggle")
        self.xml_reports, self.xml_images, self.xml_views = write_openi_xml(r / "openi-xml")
        self.nih = write_nih(r / "nih")
        self.chexpert = r / "chexpert"  # the folder holding CheXpert-v1.0-small/, which the Path cells start with
        for k, (name, *_) in enumerate(CHEXPERT_TRAIN + CHEXPERT_VALID):
            part = "train" if k < len(CHEXPERT_TRAIN) else "valid"
            write_raster(self.chexpert / "CheXpert-v1.0-small" / part / name, pattern(k))
        self.chexpert_train = write_chexpert_csv(r / "chexpert-csv" / "train.csv", chexpert_rows("train",
                                                                                                  CHEXPERT_TRAIN))
        self.chexpert_valid = write_chexpert_csv(r / "chexpert-csv" / "valid.csv", chexpert_rows("valid",
                                                                                                  CHEXPERT_VALID))
        self.cifar = r / "cifar"
        write_cifar10(self.cifar, per_batch=2)
        self.npz = r / "data.npz"
        rng = np.random.default_rng(0)
        np.savez(self.npz, train_images=rng.integers(0, 255, (12, 8, 8), dtype=np.uint8),
                 train_labels=rng.integers(0, 2, (12, 1)), test_images=rng.integers(0, 255, (4, 8, 8), dtype=np.uint8),
                 test_labels=rng.integers(0, 2, (4, 1)))
        self.dataset = make_dataset(r / "ds", n=24, size=16).path
        self.run = r / "run"
        _invoke(["train", self.dataset, "--out", self.run, "--method", "mv", "--epochs", "1", "--workers", "0",
                 *TRAIN_FAST])
        assert (self.run / "best.pt").is_file(), "the world's run did not train"
        first = pd.read_csv(self.dataset / "images.csv", dtype=str)["image_id"].iloc[0]
        self.queue = write_csv(r / "queue.csv", pd.DataFrame({"image_id": [first], "finding": ["class0"],
                                                               "expert": ["1"]}))
        self.predictions = write_csv(r / "predictions.csv", _predictions(self.dataset))
        self.fused = r / "fused.csv"  # label-only fusion of the dataset's label sets
        assert _invoke(["export-labels", self.dataset, "--aggregator", "majority", "--out", self.fused]).exit_code == 0
        self.crowd = write_crowd(r / "crowd", items=(16, 8, 8))
        self.features_dataset = r / "crowd-ds"
        _invoke(["ingest", "answers", *self.crowd.args(), "--out", self.features_dataset, "--classes",
                 "class0,class1,class2"])  # the classes of the dataset above: only its lack of features differs
        self.features_run = r / "features-run"
        _invoke(["train", self.features_dataset, "--out", self.features_run, "--method", "mv", "--epochs", "1",
                 *TRAIN_FAST])
        assert (self.features_run / "best.pt").is_file(), "the world's run on features did not train"

    @property
    def mimic_args(self) -> list:
        return self.mimic.args()


#: CheXpert rows (patient/study/view file, Frontal/Lateral, AP/PA, {finding: cell}): the labeller's, the radiologists'
CHEXPERT_TRAIN = [("patient00001/study1/view1_frontal.jpg", "Frontal", "PA", {"Edema": "1.0"}),
                  ("patient00002/study1/view1_frontal.jpg", "Frontal", "AP", {"Cardiomegaly": "-1.0"})]
CHEXPERT_VALID = [("patient64541/study1/view1_frontal.jpg", "Frontal", "AP",
                   {finding: "1.0" if finding == "Edema" else "0.0" for finding in CHEXPERT_ORDER})]


def _predictions(dataset: Path) -> pd.DataFrame:
    manifest = pd.read_csv(dataset / "images.csv", dtype=str)
    classes = json.loads((dataset / "dataset.json").read_text())["classes"]
    frame = pd.DataFrame(0.5, index=range(len(manifest)), columns=classes)
    frame.insert(0, "image", manifest["image_id"])
    return frame


def _invoke(args: list):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)


# ----------------------------------------------------------------------------- cases


@dataclass
class Call:
    """One command line and what its single error line must (and must not) say."""

    args: list
    expect: list[str] = field(default_factory=list)
    forbid: list[str] = field(default_factory=list)
    ok: bool = False  # the input is legal: the command must succeed (and say ``expect``)
    bypass_precheck: bool = False  # skip the up-front writability check: the write itself must fail cleanly
    leaves: list[Path] = field(default_factory=list)  # paths a failure may leave (a resumable ingest's .partial)
    locked: Path | None = None  # a folder made unwritable while the command runs (see locked_folder)


@dataclass
class Case:
    name: str
    make: Callable[[World, Path], Call]
    xfail: str = ""


def put(path: Path, data: bytes | str) -> Path:
    """Write ``data`` at ``path`` (creating folders): the bad file of a case."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def copy(source: Path, target: Path) -> Path:
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target


def table(w: World, labels: Path, out: Path, *extra) -> list:
    return ["ingest", "table", labels, "--images", w.images, "--out", out, "--size", "8", "--workers", "0", *extra]


def mimic(w: World, out: Path, *extra, **files: Path) -> list:
    args = dict(zip(w.mimic_args[::2], w.mimic_args[1::2]))
    args.update({f"--{key}": str(value) for key, value in files.items()})
    return ["ingest", "mimic", *[x for pair in args.items() for x in pair], "--out", out, "--size", "8",
            "--workers", "0", *extra]


def kaggle(w: World, out: Path, *extra, reports: Path | None = None, projections: Path | None = None,
           images: Path | None = None) -> list:
    return ["ingest", "openi", "--reports", reports or w.kaggle_reports, "--projections",
            projections or w.kaggle_projections, "--images", images or w.kaggle_images, "--out", out, "--size", "8",
            "--workers", "0", *extra]


def nih(w: World, out: Path, *extra, data_entry: Path | None = None, images: Path | None = None) -> list:
    return ["ingest", "nih", "--data-entry", data_entry or w.nih.data_entry, "--images", images or w.nih.images,
            "--out", out, "--size", "8", "--workers", "0", *extra]


def chexpert(w: World, out: Path, *extra, train: Path | None = None, valid: Path | None = None,
             images: Path | None = None) -> list:
    return ["ingest", "chexpert", "--train", train or w.chexpert_train, "--ground-truth", valid or w.chexpert_valid,
            "--images", images or w.chexpert, "--out", out, "--size", "8", "--workers", "0", *extra]


def broken_copy(source: Path, dest: Path, file: str, data: bytes | None = None, *, truncate: bool = False) -> Path:
    """A copy of the folder ``source`` with one file replaced by ``data``, truncated, or (data None) deleted."""
    folder = copy(source, dest)
    target = folder / file
    if truncate:
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif data is None:
        target.unlink()
    else:
        target.write_bytes(data)
    return folder


def broken_dataset(w: World, d: Path, file: str, data: bytes | None = None, *, truncate: bool = False) -> Path:
    return broken_copy(w.dataset, d / "ds", file, data, truncate=truncate)


def broken_run(w: World, d: Path, file: str, data: bytes | None = None, *, truncate: bool = False) -> Path:
    return broken_copy(w.run, d / "run", file, data, truncate=truncate)


def user_folder(d: Path) -> Path:
    """A folder of the user's that is not an ltv output: it must survive every --out pointed at it."""
    put(d / "mine" / "notes.txt", "my notes")
    return d / "mine"


def ro(d: Path) -> Path:
    """The case's unwritable folder (made unwritable by the runner); outputs go in it."""
    (d / "ro").mkdir(exist_ok=True)
    return d / "ro"


# Writing commands, each as a function of (world, case folder, output path) -> argv; used for the output rules.
WRITERS: dict[str, Callable[[World, Path, Path], list]] = {
    "ingest table": lambda w, d, out: table(w, w.labels, out),
    "ingest mimic": lambda w, d, out: mimic(w, out),
    "ingest openi": lambda w, d, out: kaggle(w, out),
    "ingest nih": lambda w, d, out: nih(w, out),
    "ingest chexpert": lambda w, d, out: chexpert(w, out),
    "ingest cifar10": lambda w, d, out: ["ingest", "cifar10", "--root", w.cifar, "--out", out],
    "ingest npz": lambda w, d, out: ["ingest", "npz", w.npz, "--out", out],
    "ingest relabels": lambda w, d, out: ["ingest", "relabels", w.dataset, w.queue, "--out", out],
    "ingest answers": lambda w, d, out: ["ingest", "answers", *w.crowd.args(), "--out", out],
    "label-reports": lambda w, d, out: ["label-reports", w.dataset, "--out", out, "--workers", "0"],
    "simulate": lambda w, d, out: ["simulate", w.dataset, "--out", out, "--annotators", "HS"],
    "train": lambda w, d, out: ["train", w.dataset, "--out", out, "--epochs", "1", "--workers", "0", *TRAIN_FAST],
    "export-labels": lambda w, d, out: ["export-labels", w.run, w.dataset, "--out", out.with_suffix(".csv"),
                                        "--device", "cpu"],
    "export-labels --aggregator": lambda w, d, out: ["export-labels", w.dataset, "--aggregator", "dawid_skene",
                                                     "--out", out.with_suffix(".csv")],
    "predict": lambda w, d, out: ["predict", w.run, w.dataset, "--out", out.with_suffix(".csv"), "--device", "cpu"],
    "evaluate": lambda w, d, out: ["evaluate", "-d", w.dataset, "--bootstrap", "0", "--out", out],
    "refine": lambda w, d, out: ["refine", w.dataset, "--budget", "2", "--out", out.with_suffix(".csv"), "--arch",
                                 "tiny", "--epochs", "2", "--warmup", "1", "--vog-epochs", "2", "--workers", "0",
                                 "--device", "cpu"],
    "refine-sim": lambda w, d, out: ["refine-sim", w.dataset, "--budget", "2", "--out", out.with_suffix(".csv"),
                                     "--arch", "tiny", "--epochs", "2", "--warmup", "1", "--vog-epochs", "2",
                                     "--rounds", "1", "--seeds", "0", "--strategies", "random", "--workers", "0",
                                     "--device", "cpu"],
    "demo": lambda w, d, out: ["demo", "--out", out, "--subjects", "4", "--epochs", "1", "--no-text"],
}


def read_only_cases() -> list[Case]:
    """--out in an unwritable folder, for every writing command: refused up front, and failing cleanly when written."""
    cases = []
    for command, argv in WRITERS.items():
        cases.append(Case(f"{command}: --out on a read-only folder",
                          lambda w, d, argv=argv: Call(argv(w, d, ro(d) / "out"), ["--out", "/ro/"], locked=ro(d))))
        if command in ("demo", "refine", "refine-sim", "label-reports"):
            continue  # refused up front like the others; their writes are the same atomic helpers
            # (label-reports would first need medspaCy and a dataset of reports)
        cases.append(Case(f"{command}: the write itself fails on a read-only folder",
                          lambda w, d, argv=argv: Call(argv(w, d, ro(d) / "out"), ["/ro/", "cannot write"],
                                                       locked=ro(d), bypass_precheck=True)))
    cases.append(Case("embed-reports: the dataset folder is read-only", lambda w, d: Call(
        ["embed-reports", (ds := copy(w.dataset, d / "ds")), "--embeddings", _embeddings_csv(w, d)],
        ["DATASET", "ds"], locked=ds)))
    cases.append(Case("embed-reports: the write itself fails in a read-only dataset folder", lambda w, d: Call(
        ["embed-reports", (ds := copy(w.dataset, d / "ds")), "--embeddings", _embeddings_csv(w, d)],
        ["text_embeddings", "cannot write"], locked=ds, bypass_precheck=True)))
    return cases


def _embeddings_csv(w: World, d: Path) -> Path:
    ids = pd.read_csv(w.dataset / "images.csv", dtype=str)["image_id"]
    return write_csv(d / "emb.csv", pd.DataFrame({"image_id": ids, "e0": 0.1, "e1": 0.2}))


def output_rule_cases() -> list[Case]:
    """--out that is not ltv's to replace: a user's folder, an input, a file, a link, an output without --force."""
    cases = []
    for command in ("ingest table", "ingest npz", "ingest nih", "ingest chexpert", "simulate", "train", "evaluate",
                    "ingest relabels", "label-reports", "ingest answers"):
        argv = WRITERS[command]
        cases.append(Case(f"{command}: --out is a folder of the user's", lambda w, d, argv=argv: Call(
            argv(w, d, user_folder(d)), ["--out", "mine", "never replaces"])))
    for command in ("export-labels", "export-labels --aggregator", "predict", "refine"):
        argv = WRITERS[command]
        cases.append(Case(f"{command}: --out is a file of the user's", lambda w, d, argv=argv: Call(
            argv(w, d, put(d / "mine.csv", "name,phone\nme,123\n").with_suffix("")), ["--out", "mine.csv",
                                                                                      "never replaces"])))
    cases += [
        Case("ingest table: --out is the --images folder", lambda w, d: Call(
            table(w, w.labels, w.images), ["--out", "table-images", "which this command reads"])),
        Case("ingest table: --out contains --images", lambda w, d: Call(
            table(w, w.labels, w.root), ["--out", "contains", "which this command reads"])),
        Case("ingest table: --out lies inside --images", lambda w, d: Call(
            table(w, w.labels, w.images / "ds"), ["--out", "lies inside", "table-images"])),
        Case("ingest mimic: --out is the --images folder", lambda w, d: Call(
            mimic(w, w.mimic.images), ["--out", "which this command reads"])),
        Case("ingest openi: --out is the --images folder", lambda w, d: Call(
            kaggle(w, w.kaggle_images), ["--out", "which this command reads"])),
        Case("ingest nih: --out is the --images folder", lambda w, d: Call(
            nih(w, w.nih.images), ["--out", "which this command reads"])),
        Case("ingest nih: --out lies inside --images", lambda w, d: Call(
            nih(w, w.nih.images / "ds"), ["--out", "lies inside"])),
        Case("ingest nih: --out is a Google label file it reads", lambda w, d: Call(
            nih(w, w.nih.test_labels, "--ground-truth", w.nih.test_labels), ["--out", "test_labels.csv",
                                                                             "which this command reads"])),
        Case("ingest nih: --out is an ltv dataset, no --force", lambda w, d: Call(
            nih(w, copy(w.dataset, d / "old")), ["--force", "old", "already holds an ltv dataset"])),
        Case("ingest chexpert: --out is the --images folder", lambda w, d: Call(
            chexpert(w, w.chexpert), ["--out", "which this command reads"])),
        Case("ingest chexpert: --out is train.csv", lambda w, d: Call(
            chexpert(w, w.chexpert_train), ["--out", "train.csv", "which this command reads"])),
        Case("ingest chexpert: --out contains a reader CSV", lambda w, d: Call(
            chexpert(w, d / "out", "--readers", f"rad={copy(w.chexpert_valid, d / 'out' / 'rad.csv')}"),
            ["--out", "contains", "rad.csv"])),
        Case("ingest cifar10: --out inside --root", lambda w, d: Call(
            ["ingest", "cifar10", "--root", w.cifar, "--out", w.cifar / "ds"], ["--out", "lies inside"])),
        Case("ingest npz: --out is the input file", lambda w, d: Call(
            ["ingest", "npz", w.npz, "--out", w.npz], ["--out", "data.npz", "which this command reads"])),
        Case("ingest table: --out is an ltv dataset, no --force", lambda w, d: Call(
            table(w, w.labels, copy(w.dataset, d / "old")), ["--force", "old", "already holds an ltv dataset"])),
        Case("ingest table: --out is a file", lambda w, d: Call(
            table(w, w.labels, put(d / "file", "x")), ["--out", "file", "is a file"])),
        Case("ingest table: --out is a symbolic link to a dataset", lambda w, d: Call(
            table(w, w.labels, _link(d / "link", copy(w.dataset, d / "target"))), ["--out", "symbolic link"])),
        Case("train: --out is the dataset", lambda w, d: Call(
            WRITERS["train"](w, d, w.dataset), ["--out", "which this command reads"])),
        Case("train: --out inside the dataset", lambda w, d: Call(
            WRITERS["train"](w, d, w.dataset / "run"), ["--out", "lies inside"])),
        Case("simulate: --out is the dataset", lambda w, d: Call(
            WRITERS["simulate"](w, d, w.dataset), ["--out", "which this command reads"])),
        Case("evaluate: --out is the run", lambda w, d: Call(
            ["evaluate", w.run, "-d", w.dataset, "--bootstrap", "0", "--out", w.run], ["--out", "run"])),
        Case("refine: --out inside the dataset", lambda w, d: Call(
            WRITERS["refine"](w, d, w.dataset / "queue"), ["--out", "lies inside"])),
        Case("refine: --run is a training run", lambda w, d: Call(
            [*WRITERS["refine"](w, d, d / "q"), "--run", w.run], ["--run", "not an `ltv refine` selection run"])),
        Case("predict: --out exists from an earlier predict, no --force", lambda w, d: Call(
            WRITERS["predict"](w, d, copy(w.predictions, d / "p.csv")), ["--force", "p.csv"])),
        Case("ingest relabels: in place, the queue inside the dataset", lambda w, d: Call(
            ["ingest", "relabels", (ds := copy(w.dataset, d / "ds")), copy(w.queue, ds / "queue.csv")],
            ["DATASET", "contains", "queue.csv"])),
        Case("label-reports: --out is the dataset", lambda w, d: Call(
            WRITERS["label-reports"](w, d, w.dataset), ["--out", "which this command reads"])),
        Case("label-reports: --out lies inside the dataset", lambda w, d: Call(
            WRITERS["label-reports"](w, d, w.dataset / "new"), ["--out", "lies inside"])),
        Case("label-reports: --out is an ltv dataset, no --force", lambda w, d: Call(
            WRITERS["label-reports"](w, d, copy(w.dataset, d / "old")), ["--force", "old",
                                                                         "already holds an ltv dataset"])),
        Case("label-reports: --out is a --rules file", lambda w, d: Call(
            [*WRITERS["label-reports"](w, d, (rules := put(d / "rules.csv", RULES))), "--rules", rules],
            ["--out", "rules.csv", "which this command reads"])),
        Case("demo: --out is a folder of the user's", lambda w, d: Call(
            WRITERS["demo"](w, d, user_folder(d)), ["--out", "mine"])),
    ]
    return cases


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def ingest_cases() -> list[Case]:
    header = "image,labeller,label\n"
    return [
        Case("ingest table: labels file missing", lambda w, d: Call(
            table(w, d / "none.csv", d / "out"), ["none.csv", "no such labels file"])),
        Case("ingest table: labels file empty", lambda w, d: Call(
            table(w, put(d / "l.csv", b""), d / "out"), ["l.csv", "empty"])),
        Case("ingest table: header only", lambda w, d: Call(
            table(w, put(d / "l.csv", header), d / "out"), ["l.csv", "header", "no rows"])),
        Case("ingest table: random bytes", lambda w, d: Call(
            table(w, put(d / "l.csv", RANDOM), d / "out"), ["l.csv"])),
        Case("ingest table: a cell that is not UTF-8", lambda w, d: Call(
            table(w, put(d / "l.csv", header.encode() + b"a.png,r1,x\nb.png,r1," + NOT_UTF8 + b"\n"), d / "out"),
            ["l.csv", "line 3", "column 'label'", "UTF-8"])),
        Case("ingest table: no image column", lambda w, d: Call(
            table(w, put(d / "l.csv", "file,labeller,label\na.png,r1,x\n"), d / "out"), ["l.csv", "'image'",
                                                                                          "'file'"])),
        Case("ingest table: separated by semicolons", lambda w, d: Call(
            table(w, put(d / "l.csv", "image;labeller;label\na.png;r1;x\n"), d / "out"), ["l.csv", "semicolons"])),
        Case("ingest table: blank image cell", lambda w, d: Call(
            table(w, put(d / "l.csv", header + "a.png,r1,x\n,r1,y\n"), d / "out"), ["l.csv", "line 3", "'image'"])),
        Case("ingest table: duplicate image", lambda w, d: Call(
            table(w, put(d / "l.csv", header + "a.png,r1,x\na.png,r1,y\n"), d / "out"), ["l.csv", "line 3",
                                                                                         "duplicate"])),
        Case("ingest table: multi-label value 2", lambda w, d: Call(
            table(w, put(d / "l.csv", "image,labeller,finding,value\na.png,r1,cat,1\na.png,r1,dog,2\n"), d / "out"),
            ["l.csv", "line 3", "column 'value'"])),
        Case("ingest table: long table without a label column", lambda w, d: Call(
            table(w, put(d / "l.csv", "image,labeller,notes\na.png,r1,hi\n"), d / "out"),
            ["l.csv", "long labels table"])),
        Case("ingest table: bad split value", lambda w, d: Call(
            table(w, put(d / "l.csv", "image,labeller,label,split\na.png,r1,x,training\n"), d / "out"),
            ["l.csv", "line 2", "column 'split'"])),
        Case("ingest table: image path with '..' (--strict)", lambda w, d: Call(
            table(w, put(d / "l.csv", header + "a.png,r1,x\n../outside/secret.png,r1,y\n"), d / "out", "--strict"),
            ["image 2 of 2", "'..'", "--strict"])),
        Case("ingest table: every image path leaves the folder", lambda w, d: Call(
            table(w, put(d / "l.csv", header + "../outside/secret.png,r1,x\n/etc/hostname,r1,y\n"), d / "out"),
            ["could be read", "'..'"], leaves=[d / "out.partial"])),
        Case("ingest table: absolute image path (--strict)", lambda w, d: Call(
            table(w, put(d / "l.csv", header + "/etc/hostname,r1,x\n"), d / "out", "--strict"),
            ["image 1 of 1", "absolute", "--strict"])),
        Case("ingest table: unreadable image (--strict)", lambda w, d: Call(
            ["ingest", "table", put(d / "l.csv", header + "bad.png,r1,x\n"), "--images",
             put(d / "imgs" / "bad.png", RANDOM).parent, "--out", d / "out", "--size", "8", "--workers", "0",
             "--strict"], ["image 1 of 1 (id 'bad.png')", "--strict"], forbid=[str(d / "imgs")],
            leaves=[d / "out.partial"])),
        Case("ingest table: --images folder missing", lambda w, d: Call(
            ["ingest", "table", w.labels, "--images", d / "nowhere", "--out", d / "out"], ["nowhere",
                                                                                          "no such image folder"])),
        Case("ingest table: ground truth with an unknown image", lambda w, d: Call(
            table(w, w.labels, d / "out", "--ground-truth", put(d / "t.csv", "image,label\nzzz.png,x\n")),
            ["t.csv", "zzz.png"])),
        Case("ingest table: ground truth not UTF-8", lambda w, d: Call(
            table(w, w.labels, d / "out", "--ground-truth", put(d / "t.csv", b"image,label\na.png," + NOT_UTF8)),
            ["t.csv", "line 2", "column 'label'"])),
        Case("ingest table: Parquet that is not Parquet", lambda w, d: Call(
            table(w, put(d / "l.parquet", RANDOM), d / "out"), ["l.parquet", "cannot read"])),
        Case("ingest table: gzip that is not gzip", lambda w, d: Call(
            table(w, put(d / "l.csv.gz", RANDOM), d / "out"), ["l.csv.gz", "cannot read"])),
        Case("ingest table: NIH-style demographic columns", lambda w, d: Call(
            table(w, put(d / "l.csv", "image,Finding Labels,Patient ID,Patient Age\na.png,x,00012,58\n"
                                      "b.png,y,00013,61\n"), d / "out"), ["l.csv", "Patient ID"])),
        Case("ingest mimic: metadata without ViewPosition", lambda w, d: Call(
            mimic(w, d / "out", metadata=put(d / "meta.csv", "dicom_id,subject_id,study_id\nx,1,2\n")),
            ["meta.csv", "'ViewPosition'"])),
        Case("ingest mimic: metadata gzip of random bytes", lambda w, d: Call(
            mimic(w, d / "out", metadata=put(d / "meta.csv.gz", RANDOM)), ["meta.csv.gz", "cannot read"])),
        Case("ingest mimic: metadata header only", lambda w, d: Call(
            mimic(w, d / "out", metadata=put(d / "meta.csv", "dicom_id,subject_id,study_id,ViewPosition\n")),
            ["meta.csv", "no rows"])),
        Case("ingest mimic: unknown split value", lambda w, d: Call(
            mimic(w, d / "out", split=_edit_csv(w.mimic.split, d / "split.csv", "split", 0, "training")),
            ["split.csv", "line 2", "column 'split'"])),
        Case("ingest mimic: label code 2", lambda w, d: Call(
            mimic(w, d / "out", negbio=_edit_csv(w.mimic.negbio, d / "negbio.csv", "Edema", 1, "2.0")),
            ["negbio.csv", "line 3", "column 'Edema'"])),
        Case("ingest mimic: chexpert cell not UTF-8", lambda w, d: Call(
            mimic(w, d / "out", chexpert=put(d / "chexpert.csv", w.mimic.chexpert.read_bytes().replace(
                b"-1.0", NOT_UTF8, 1))), ["chexpert.csv", "line", "column", "UTF-8"])),
        Case("ingest mimic: dicom_id climbing out with '..' (--strict)", lambda w, d: Call(
            mimic(w, d / "out", "--strict", metadata=_edit_csv(w.mimic.metadata, d / "meta.csv", "dicom_id", 0,
                                                               "../../../../../outside/secret"),
                  split=_edit_csv(w.mimic.split, d / "split.csv", "dicom_id", 0, "../../../../../outside/secret")),
            ["image 1 of", "'..'", "--strict"], forbid=[SUBJECT])),
        Case("ingest mimic: subject_id climbing out with '..' (--strict)", lambda w, d: Call(
            mimic(w, d / "out", "--strict", metadata=_edit_csv(w.mimic.metadata, d / "meta.csv", "subject_id", 0,
                                                               "../../..")),
            ["image 1 of", "'..'", "--strict"])),
        Case("ingest mimic: unreadable image (--strict) names no subject id", lambda w, d: Call(
            mimic(w, d / "out", "--strict", images=_broken_mimic_images(w, d)),
            [f"id '{DEFAULT_IMAGES[0].dicom_id}'", "--strict"], forbid=[SUBJECT, "files/p"],
            leaves=[d / "out.partial"])),
        Case("ingest mimic: ground truth with an unknown dicom_id", lambda w, d: Call(
            mimic(w, d / "out", "--ground-truth", put(d / "gt.csv", "dicom_id,Edema\nnope,1\n")),
            ["gt.csv", "'nope'"])),
        Case("ingest openi: Kaggle filename climbing out with '..' (--strict)", lambda w, d: Call(
            kaggle(w, d / "out", "--strict", projections=_edit_csv(w.kaggle_projections, d / "proj.csv", "filename",
                                                                   0, "../../outside/secret.png")),
            ["image 1 of", "'..'", "--strict"])),
        Case("ingest openi: projections without a projection column", lambda w, d: Call(
            kaggle(w, d / "out", projections=put(d / "proj.csv", "uid,filename\n1,x.png\n")),
            ["proj.csv", "'projection'"])),
        Case("ingest openi: Kaggle reports not UTF-8", lambda w, d: Call(
            kaggle(w, d / "out", reports=put(d / "rep.csv", b"uid,findings,impression\n1,ok," + NOT_UTF8 + b"\n")),
            ["rep.csv", "line 2", "column 'impression'"])),
        Case("ingest openi: a report XML of random bytes", lambda w, d: Call(
            ["ingest", "openi", "--reports", _xml_folder(w, d, RANDOM), "--images", w.xml_images, "--projections",
             w.xml_views, "--out", d / "out"], ["1.xml", "not valid XML"])),
        Case("ingest openi: XML parentImage climbing out with '..' (--strict)", lambda w, d: Call(
            ["ingest", "openi", "--reports", _xml_folder(w, d, (w.xml_reports / "3.xml").read_bytes().replace(
                b'parentImage id="CXR3_1_IM-0003-1001"', b'parentImage id="../../outside/secret"')),
             "--images", w.xml_images, "--views", "all", "--out", d / "out", "--strict", "--workers", "0"],
            ["'..'", "--strict"])),
        Case("ingest nih: Data_Entry of random bytes", lambda w, d: Call(
            nih(w, d / "out", data_entry=put(d / "Data_Entry_2017.csv", RANDOM)), ["Data_Entry_2017.csv"])),
        Case("ingest nih: Data_Entry without Patient ID", lambda w, d: Call(
            nih(w, d / "out", data_entry=put(d / "entry.csv", "Image Index,Finding Labels\nx.png,No Finding\n")),
            ["entry.csv", "'Patient ID'"])),
        Case("ingest nih: Data_Entry header only", lambda w, d: Call(
            nih(w, d / "out", data_entry=put(d / "entry.csv", "Image Index,Finding Labels,Patient ID\n")),
            ["entry.csv", "no rows"])),
        Case("ingest nih: a Finding Labels word NIH never wrote", lambda w, d: Call(
            nih(w, d / "out", data_entry=_edit_csv(w.nih.data_entry, d / "entry.csv", "Finding Labels", 1,
                                                   "Effusion|Dragon")),
            ["entry.csv", "line 3", "column 'Finding Labels'"])),
        Case("ingest nih: a reader's 'MAYBE'", lambda w, d: Call(
            nih(w, d / "out", "--readers", _edit_csv(w.nih.readers, d / "individual_readers.csv", "Pneumothorax", 0,
                                                     "MAYBE")),
            ["individual_readers.csv", "line 2", "column 'Pneumothorax'"])),
        Case("ingest nih: readers file not UTF-8", lambda w, d: Call(
            nih(w, d / "out", "--readers", put(d / "readers.csv", w.nih.readers.read_bytes().replace(b"YES", NOT_UTF8,
                                                                                                     1))),
            ["readers.csv", "line", "column", "UTF-8"])),
        Case("ingest nih: a Google readers file with a header only", lambda w, d: Call(
            nih(w, d / "out", "--readers", put(d / "readers.csv", w.nih.readers.read_text().splitlines()[0] + "\n")),
            ["readers.csv", "no rows"])),
        Case("ingest nih: ground truth with an image not in Data_Entry", lambda w, d: Call(
            nih(w, d / "out", "--ground-truth", _edit_csv(w.nih.test_labels, d / "test_labels.csv", "Image Index", 0,
                                                          "99999999_000.png")),
            ["test_labels.csv", "99999999_000.png"])),
        Case("ingest nih: one official list without the other", lambda w, d: Call(
            nih(w, d / "out", "--train-val-list", w.nih.train_val_list), ["--test-list"])),
        Case("ingest nih: Image Index climbing out with '..' (--strict)", lambda w, d: Call(
            nih(w, d / "out", "--strict", data_entry=_edit_csv(w.nih.data_entry, d / "entry.csv", "Image Index", 0,
                                                               "../../outside/secret.png")),
            ["image 1 of", "'..'", "--strict"])),
        Case("ingest nih: absolute Image Index (--strict)", lambda w, d: Call(
            nih(w, d / "out", "--strict", data_entry=_edit_csv(w.nih.data_entry, d / "entry.csv", "Image Index", 0,
                                                               "/etc/hostname")),
            ["image 1 of", "absolute", "--strict"])),
        Case("ingest nih: --images folder missing", lambda w, d: Call(
            nih(w, d / "out", images=d / "nowhere"), ["nowhere"])),
        Case("ingest chexpert: train.csv of random bytes", lambda w, d: Call(
            chexpert(w, d / "out", train=put(d / "train.csv", RANDOM)), ["train.csv"])),
        Case("ingest chexpert: train.csv without Path", lambda w, d: Call(
            chexpert(w, d / "out", train=put(d / "train.csv", "Image,Edema\nx.jpg,1.0\n")), ["train.csv", "'Path'"])),
        Case("ingest chexpert: train.csv without a finding column", lambda w, d: Call(
            chexpert(w, d / "out", train=put(d / "train.csv", w.chexpert_train.read_text().replace("Edema", "Oedema"))),
            ["train.csv", "'Edema'"])),
        Case("ingest chexpert: label code 2", lambda w, d: Call(
            chexpert(w, d / "out", train=_edit_csv(w.chexpert_train, d / "train.csv", "Edema", 1, "2.0")),
            ["train.csv", "line 3", "column 'Edema'"])),
        Case("ingest chexpert: valid.csv not UTF-8", lambda w, d: Call(
            chexpert(w, d / "out", valid=put(d / "valid.csv", w.chexpert_valid.read_bytes().replace(b"Female", NOT_UTF8,
                                                                                                    1))),
            ["valid.csv", "line 2", "column 'Sex'", "UTF-8"])),
        Case("ingest chexpert: a reader's image in neither CSV", lambda w, d: Call(
            chexpert(w, d / "out", "--readers", _edit_csv(w.chexpert_valid, d / "rad.csv", "Path", 0,
                                                          "CheXpert-v1.0-small/valid/patient99999/study1/x.jpg")),
            ["rad.csv", "neither"])),
        Case("ingest chexpert: two readers of one name", lambda w, d: Call(
            chexpert(w, d / "out", "--readers", f"r={w.chexpert_valid}", "--readers", f"r={w.chexpert_valid}"),
            ["--readers", "twice"])),
        Case("ingest chexpert: Path climbing out with '..' (--strict)", lambda w, d: Call(
            chexpert(w, d / "out", "--strict", train=_edit_csv(w.chexpert_train, d / "train.csv", "Path", 0,
                                                               "CheXpert-v1.0-small/../../outside/secret.png")),
            ["image 1 of", "'..'", "--strict"])),
        Case("ingest chexpert: absolute Path (--strict)", lambda w, d: Call(
            chexpert(w, d / "out", "--strict", train=_edit_csv(w.chexpert_train, d / "train.csv", "Path", 0,
                                                               "/etc/hostname")),
            ["image 1 of", "absolute", "--strict"])),
        Case("ingest chexpert: every image path leaves the folder", lambda w, d: Call(
            chexpert(w, d / "out", train=_chexpert_paths(w.chexpert_train, d / "train.csv",
                                                         ["../outside/secret.png", "/etc/hostname"]),
                     valid=_chexpert_paths(w.chexpert_valid, d / "valid.csv", ["CheXpert-v1.0-small/../../x.png"])),
            ["could be read", "'..'"], leaves=[d / "out.partial"])),
        Case("ingest cifar10: a batch of random bytes", lambda w, d: Call(
            ["ingest", "cifar10", "--root", _cifar_with(w, d, "data_batch_2", RANDOM), "--out", d / "out"],
            ["data_batch_2", "not a CIFAR-10 python batch"])),
        Case("ingest cifar10: a pickle that runs code", lambda w, d: Call(
            ["ingest", "cifar10", "--root", _cifar_with(w, d, "test_batch", pickle.dumps(_Evil())), "--out",
             d / "out"], ["test_batch", "refusing"])),
        Case("ingest cifar10: a batch missing", lambda w, d: Call(
            ["ingest", "cifar10", "--root", _cifar_with(w, d, "data_batch_5", None), "--out", d / "out"],
            ["data_batch_5", "missing"])),
        Case("ingest npz: random bytes", lambda w, d: Call(
            ["ingest", "npz", put(d / "x.npz", RANDOM), "--out", d / "out"], ["x.npz"])),
        Case("ingest npz: a zip cut in half", lambda w, d: Call(
            ["ingest", "npz", put(d / "x.npz", w.npz.read_bytes()[:300]), "--out", d / "out"], ["x.npz"])),
        Case("ingest npz: no train_images", lambda w, d: Call(
            ["ingest", "npz", _npz(d / "x.npz", test_images=np.zeros((2, 8, 8), np.uint8),
                                   test_labels=np.zeros(2, int)), "--out", d / "out"], ["x.npz", "train_images"])),
        Case("ingest npz: images of floats", lambda w, d: Call(
            ["ingest", "npz", _npz(d / "x.npz", train_images=np.zeros((2, 8, 8)), train_labels=np.zeros(2, int)),
             "--out", d / "out"], ["x.npz", "uint8"])),
    ]


class _Evil:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def _edit_csv(source: Path, target: Path, column: str, row: int, value: str) -> Path:
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    return write_csv(target, frame)


def _chexpert_paths(source: Path, target: Path, paths: list[str]) -> Path:
    """A copy of a CheXpert CSV whose Path cells are ``paths`` (one per row)."""
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame["Path"] = paths
    return write_csv(target, frame)


def _broken_mimic_images(w: World, d: Path) -> Path:
    images = copy(w.mimic.images, d / "mimic-images")
    first = DEFAULT_IMAGES[0]
    (images / "files" / f"p{first.subject[:2]}" / f"p{first.subject}" / f"s{first.study}"
     / f"{first.dicom_id}.jpg").write_bytes(RANDOM)
    return images


def _xml_folder(w: World, d: Path, first: bytes) -> Path:
    folder = copy(w.xml_reports, d / "xml")
    name = "1.xml" if first == RANDOM else "3.xml"
    (folder / name).write_bytes(first)
    return folder


def _cifar_with(w: World, d: Path, name: str, data: bytes | None) -> Path:
    root = copy(w.cifar, d / "cifar")
    (root / name).unlink() if data is None else (root / name).write_bytes(data)
    return root


def _npz(path: Path, **arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def dataset_cases() -> list[Case]:
    """Damaged dataset folders, through every command that opens one."""
    damages = {
        "dataset.json of random bytes": ("dataset.json", RANDOM, False, ["dataset.json"]),
        "dataset.json a JSON list": ("dataset.json", b"[1, 2]", False, ["dataset.json", "list"]),
        "dataset.json without n_images": ("dataset.json", None, False, ["dataset.json", "'n_images'"]),
        "labels.npy truncated": ("labels.npy", None, True, ["labels.npy", "truncated"]),
        "images.npy of random bytes": ("images.npy", RANDOM, False, ["images.npy", "not a NumPy array"]),
        "images.csv missing": ("images.csv", None, False, ["images.csv", "missing"]),
        "ground_truth.npy of another shape": ("ground_truth.npy", None, False, ["ground_truth.npy", "shape"]),
    }
    commands = {
        "info": lambda w, d, ds: ["info", ds],
        "train": lambda w, d, ds: ["train", ds, "--out", d / "run", "--epochs", "1", *TRAIN_FAST],
        "export-labels": lambda w, d, ds: ["export-labels", w.run, ds, "--out", d / "e.csv"],
        "export-labels --aggregator": lambda w, d, ds: ["export-labels", ds, "--aggregator", "majority", "--out",
                                                        d / "e.csv"],
        "predict": lambda w, d, ds: ["predict", w.run, ds, "--out", d / "p.csv"],
        "evaluate": lambda w, d, ds: ["evaluate", "-d", ds, "--out", d / "ev"],
        "simulate": lambda w, d, ds: ["simulate", ds, "--out", d / "sim"],
        "refine": lambda w, d, ds: ["refine", ds, "--budget", "2", "--out", d / "q.csv"],
        "refine-sim": lambda w, d, ds: ["refine-sim", ds, "--budget", "2", "--out", d / "r.csv"],
        "embed-reports": lambda w, d, ds: ["embed-reports", ds, "--embeddings", d / "none.csv"],
        "add-features": lambda w, d, ds: ["add-features", ds, _features_csv(w, d)],
        "ingest relabels": lambda w, d, ds: ["ingest", "relabels", ds, w.queue, "--out", d / "new"],
        "label-reports": lambda w, d, ds: ["label-reports", ds, "--out", d / "new", "--workers", "0"],
    }
    plan = [("info", damage) for damage in damages] + [
        (command, damage) for command in commands if command != "info"
        for damage in ("dataset.json of random bytes", "labels.npy truncated", "images.npy of random bytes")]
    plan += [("info", "dataset folder missing"), ("train", "images.csv missing")]
    cases = []
    for command, damage in plan:
        if damage == "dataset folder missing":
            cases.append(Case("info: dataset folder missing", lambda w, d: Call(["info", d / "nope"],
                                                                                 ["nope", "no such dataset folder"])))
            continue
        file, data, truncate, expect = damages[damage]
        cases.append(Case(f"{command}: {damage}", lambda w, d, c=command, f=file, b=data, t=truncate, e=expect: Call(
            commands[c](w, d, _damaged(w, d, f, b, t)), e)))
    return cases


def _damaged(w: World, d: Path, file: str, data: bytes | None, truncate: bool) -> Path:
    if file == "dataset.json" and data is None:
        ds = copy(w.dataset, d / "ds")
        meta = json.loads((ds / file).read_text())
        del meta["n_images"]
        (ds / file).write_text(json.dumps(meta))
        return ds
    if file == "ground_truth.npy":
        ds = copy(w.dataset, d / "ds")
        np.save(ds / file, np.zeros((3, 3), np.int8))
        return ds
    return broken_dataset(w, d, file, data, truncate=truncate)


def run_cases() -> list[Case]:
    """Damaged run folders, through export-labels, predict and evaluate."""
    damages = {
        "run folder missing": (lambda w, d: d / "nope", ["nope", "no such run folder"]),
        "config.json missing": (lambda w, d: broken_run(w, d, "config.json"), ["config.json is missing"]),
        "config.json of random bytes": (lambda w, d: broken_run(w, d, "config.json", RANDOM), ["config.json"]),
        "config.json of another tool": (lambda w, d: broken_run(w, d, "config.json", b'{"model_type": "bert"}'),
                                        ["config.json", "'classes'"]),
        "best.pt truncated": (lambda w, d: broken_run(w, d, "best.pt", truncate=True), ["best.pt"]),
        "best.pt missing": (lambda w, d: broken_run(w, d, "best.pt"), ["best.pt", "no such checkpoint"]),
    }
    commands = {
        "export-labels": lambda w, d, run: ["export-labels", run, w.dataset, "--out", d / "e.csv", "--device", "cpu"],
        "predict": lambda w, d, run: ["predict", run, w.dataset, "--out", d / "p.csv", "--device", "cpu"],
        "evaluate": lambda w, d, run: ["evaluate", run, "-d", w.dataset, "--device", "cpu"],
    }
    return [Case(f"{command}: {damage}", lambda w, d, c=command, m=make, e=expect: Call(commands[c](w, d, m(w, d)), e))
            for command in commands for damage, (make, expect) in damages.items()]


def table_reader_cases() -> list[Case]:
    """The other user files: predictions, hand labels, answered queues, matrices, embeddings, a resume."""
    queue_header = "image_id,finding,expert\n"
    return [
        Case("evaluate: predictions separated by semicolons", lambda w, d: Call(
            ["evaluate", "--predictions", put(d / "p.csv", "image;class0\nimg0000;0.5\n"), "--labels", w.queue],
            ["p.csv", "semicolons", "'image;class0'"])),
        Case("evaluate: predictions not UTF-8", lambda w, d: Call(
            ["evaluate", "-d", w.dataset, "--predictions", put(d / "p.csv", w.predictions.read_bytes().replace(
                b"0.5", NOT_UTF8, 4))], ["p.csv", "line 2", "column 'class0'"])),
        Case("evaluate: predictions header only", lambda w, d: Call(
            ["evaluate", "-d", w.dataset, "--predictions", put(d / "p.csv", "image,class0,class1,class2\n")],
            ["p.csv", "no rows"])),
        Case("evaluate: prediction outside [0, 1] on a test image", lambda w, d: Call(
            ["evaluate", "-d", w.dataset, "--predictions", put(d / "p.csv", w.predictions.read_text().replace(
                "0.5", "7"))], ["p.csv", f"line {_first_test_row(w) + 2}", "column 'class0'", "outside [0, 1]"])),
        Case("evaluate: hand labels with unknown ids", lambda w, d: Call(
            ["evaluate", "-d", w.dataset, "--labels", put(d / "gt.csv", "image,class0\nzzz,1\n")],
            ["gt.csv", "'zzz'"])),
        Case("evaluate: hand labels random bytes", lambda w, d: Call(
            ["evaluate", "-d", w.dataset, "--labels", put(d / "gt.csv", RANDOM)], ["gt.csv"])),
        Case("evaluate: label sets with no labels on the test split", lambda w, d: Call(
            ["evaluate", "-d", _no_test_labels(w, d), "--bootstrap", "10"], ["no labels on this split"], ok=True)),
        Case("ingest relabels: queue missing", lambda w, d: Call(
            ["ingest", "relabels", w.dataset, d / "q.csv", "--out", d / "new"], ["q.csv", "no such"])),
        Case("ingest relabels: queue header only", lambda w, d: Call(
            ["ingest", "relabels", w.dataset, put(d / "q.csv", queue_header), "--out", d / "new"],
            ["q.csv", "no rows"])),
        Case("ingest relabels: answer 'maybe'", lambda w, d: Call(
            ["ingest", "relabels", w.dataset, put(d / "q.csv", queue_header + "img0000,class0,maybe\n"), "--out",
             d / "new"], ["q.csv", "line 2", "'maybe'"])),
        Case("ingest relabels: unknown image id", lambda w, d: Call(
            ["ingest", "relabels", w.dataset, put(d / "q.csv", queue_header + "nobody,class0,1\n"), "--out",
             d / "new"], ["q.csv", "line 2", "'nobody'"])),
        Case("ingest relabels: queue not UTF-8", lambda w, d: Call(
            ["ingest", "relabels", w.dataset, put(d / "q.csv", queue_header.encode() + b"img0000,class0," + NOT_UTF8),
             "--out", d / "new"], ["q.csv", "line 2", "column 'expert'"])),
        Case("simulate: matrices of random bytes", lambda w, d: Call(
            ["simulate", w.dataset, "--out", d / "sim", "--matrices", put(d / "m.json", RANDOM)], ["m.json"])),
        Case("simulate: matrix of words", lambda w, d: Call(
            ["simulate", w.dataset, "--out", d / "sim", "--matrices", put(d / "m.json", '{"me": [["a", "b"]]}')],
            ["m.json:me", "not a table of numbers"])),
        Case("label-reports: --rules file missing", lambda w, d: Call(
            [*WRITERS["label-reports"](w, d, d / "new"), "--rules", d / "none.csv"], ["none.csv", "no such rules file"])),
        Case("label-reports: --rules of random bytes", lambda w, d: Call(
            [*WRITERS["label-reports"](w, d, d / "new"), "--rules", put(d / "r.csv", RANDOM)], ["r.csv"])),
        Case("label-reports: --rules with a cell that is not UTF-8", lambda w, d: Call(
            [*WRITERS["label-reports"](w, d, d / "new"), "--rules", put(d / "r.csv", RULES.encode() + b"mention,"
                                                                       b"Hernia," + NOT_UTF8 + b",\n")],
            ["r.csv", "line 3", "UTF-8"])),
        Case("label-reports: --rules header only", lambda w, d: Call(
            [*WRITERS["label-reports"](w, d, d / "new"), "--rules", put(d / "r.csv", "kind,finding,phrase,option\n")],
            ["r.csv"])),
        Case("label-reports: --rules row of an unknown kind", lambda w, d: Call(
            [*WRITERS["label-reports"](w, d, d / "new"), "--rules", put(d / "r.csv", RULES + "sideways,,absent,\n")],
            ["r.csv", "line 3", "'sideways'"])),
        Case("label-reports: --replace-rules without --rules", lambda w, d: Call(
            [*WRITERS["label-reports"](w, d, d / "new"), "--replace-rules"], ["--replace-rules", "--rules"])),
        Case("label-reports: classes the rules have no phrases for", lambda w, d: Call(
            WRITERS["label-reports"](w, d, d / "new"), ["class0", "--rules"])),
        Case("label-reports: a labeller name with a space", lambda w, d: Call(
            [*WRITERS["label-reports"](w, d, d / "new"), "--labeller", "my labeller"], ["--labeller",
                                                                                      "'my labeller'"])),
        Case("embed-reports: embeddings CSV not UTF-8", lambda w, d: Call(
            ["embed-reports", copy(w.dataset, d / "ds"), "--embeddings", put(d / "e.csv", b"image_id,e0\nimg0000,"
                                                                            + NOT_UTF8)], ["e.csv"])),
        Case("embed-reports: embeddings .npz cut in half", lambda w, d: Call(
            ["embed-reports", copy(w.dataset, d / "ds"), "--embeddings", _half_npz(d)], ["e.npz"])),
        Case("embed-reports: embeddings .npy of random bytes", lambda w, d: Call(
            ["embed-reports", copy(w.dataset, d / "ds"), "--embeddings", put(d / "e.npy", RANDOM), "--ids",
             put(d / "ids.csv", "image_id\nimg0000\n")], ["e.npy"])),
        Case("embed-reports: embeddings CSV header only", lambda w, d: Call(
            ["embed-reports", copy(w.dataset, d / "ds"), "--embeddings", put(d / "e.csv", "image_id,e0\n")],
            ["e.csv"])),
        Case("embed-reports: a model folder of another kind", lambda w, d: Call(
            ["embed-reports", copy(w.dataset, d / "ds"), "--model", put(d / "model" / "config.json", RANDOM).parent],
            ["model"])),
        Case("train: --pretrained of random bytes", lambda w, d: Call(
            ["train", w.dataset, "--out", d / "run", "--epochs", "1", *TRAIN_FAST, "--arch", "resnet18",
             "--pretrained", put(d / "w.pt", RANDOM)], ["w.pt", "not a torch state dict"])),
        Case("train: --pretrained holding a list", lambda w, d: Call(
            ["train", w.dataset, "--out", d / "run", "--epochs", "1", *TRAIN_FAST, "--arch", "resnet18",
             "--pretrained", _torch_file(d / "w.pt", [1, 2])], ["w.pt", "list"])),
        Case("train: --pretrained of another network's shapes", lambda w, d: Call(
            ["train", w.dataset, "--out", d / "run", "--epochs", "1", *TRAIN_FAST, "--arch", "resnet18",
             "--pretrained", _torch_file(d / "w.pt", {"conv1.weight": np.zeros((2, 2))})], ["w.pt", "does not fit"])),
        Case("train: --vote crossfit with one fold", lambda w, d: Call(
            ["train", w.dataset, "--out", d / "run", "--epochs", "1", *TRAIN_FAST, "--vote", "crossfit", "--folds",
             "1"], ["--folds 1", "at least 2"])),
        Case("train: --vote crossfit with a negative head decay", lambda w, d: Call(
            ["train", w.dataset, "--out", d / "run", "--epochs", "1", *TRAIN_FAST, "--head-decay", "-1"],
            ["--head-decay -1.0", "non-negative"])),
        Case("train: --vote crossfit with unknown evidence", lambda w, d: Call(
            ["train", w.dataset, "--out", d / "run", "--epochs", "1", *TRAIN_FAST, "--evidence", "pixels"],
            ["--evidence", "pixels"])),
        Case("train: --resume of a run whose last.pt is cut in half", lambda w, d: Call(
            ["train", w.dataset, "--out", broken_run(w, d, "last.pt", truncate=True), "--resume", "--method", "mv",
             "--epochs", "2", "--workers", "0", *TRAIN_FAST], ["last.pt"])),
    ]


def _first_test_row(w: World) -> int:
    return int((pd.read_csv(w.dataset / "images.csv", dtype=str)["split"] == "test").to_numpy().argmax())


def _torch_file(path: Path, content) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, dict):
        content = {key: torch.from_numpy(value).float() for key, value in content.items()}
    torch.save(content, path)
    return path


def _no_test_labels(w: World, d: Path) -> Path:
    """A dataset whose annotators labelled the training images only (a real crowd-labelled set)."""
    ds = copy(w.dataset, d / "crowd")
    labels = np.load(ds / "labels.npy")
    test = (pd.read_csv(ds / "images.csv", dtype=str)["split"] == "test").to_numpy()
    labels[test] = -1
    np.save(ds / "labels.npy", labels)
    return ds


def _half_npz(d: Path) -> Path:
    _npz(d / "full.npz", embeddings=np.zeros((2, 3)), image_id=np.array(["img0000", "img0001"]))
    return put(d / "e.npz", (d / "full.npz").read_bytes()[:200])


def _features_csv(w: World, d: Path, ids: list[str] | None = None, value: str = "0.5") -> Path:
    """Two-dimensional features for ``ids`` (default: every image of the world's dataset), every cell ``value``."""
    ids = pd.read_csv(w.dataset / "images.csv", dtype=str)["image_id"].tolist() if ids is None else ids
    return put(d / "f.csv", "image_id,f0,f1\n" + "".join(f"{i},{value},1.0\n" for i in ids))


def _with_features(w: World, d: Path) -> Path:
    ds = copy(w.dataset, d / "ds")
    _invoke(["add-features", ds, _features_csv(w, d)])
    return ds


def _answers(w: World, d: Path, *, answers: Path | None = None, truth: Path | None = None,
             features: Path | None = None) -> list:
    """``ltv ingest answers`` on the world's crowd, with its train answers, truth or features replaced."""
    crowd = w.crowd.root
    return ["ingest", "answers", "--answers", f"train={answers or crowd / 'answers.txt'}",
            "--truth", f"train={truth or crowd / 'truth_train.txt'}",
            "--features", f"train={features or crowd / 'features_train.npy'}", "--out", d / "out"]


def feature_cases() -> list[Case]:
    """Image features: the files ``add-features``, ``ingest --features`` and ``ingest answers`` read, the
    features in a dataset folder, and the inputs ``train --input features`` and its runs need."""
    ids = lambda w: pd.read_csv(w.dataset / "images.csv", dtype=str)["image_id"].tolist()  # noqa: E731
    return [
        Case("add-features: the file is missing", lambda w, d: Call(
            ["add-features", copy(w.dataset, d / "ds"), d / "none.csv"], ["none.csv", "no such file"])),
        Case("add-features: a cell that is not a number", lambda w, d: Call(
            ["add-features", copy(w.dataset, d / "ds"), _features_csv(w, d, value="abc")],
            ["f.csv", "line 2", "column 'f0'", "'abc'"])),
        Case("add-features: a NaN", lambda w, d: Call(
            ["add-features", copy(w.dataset, d / "ds"), _features_csv(w, d, value="nan")],
            ["f.csv", "line 2", "column 'f0'", "finite"])),
        Case("add-features: an image id twice", lambda w, d: Call(
            ["add-features", copy(w.dataset, d / "ds"), _features_csv(w, d, ids(w) + ids(w)[:1])],
            ["f.csv", repr(ids(w)[0]), "2 times"])),
        Case("add-features: vectors for half the images", lambda w, d: Call(
            ["add-features", copy(w.dataset, d / "ds"), _features_csv(w, d, ids(w)[::2])],
            ["f.csv", "have no feature vector"])),
        Case("add-features: a .npy without its ids", lambda w, d: Call(
            ["add-features", copy(w.dataset, d / "ds"), _npy(d / "f.npy", np.zeros((24, 2), np.float32))],
            ["f.npy", "--ids"])),
        Case("add-features: a .npy of random bytes", lambda w, d: Call(
            ["add-features", copy(w.dataset, d / "ds"), put(d / "f.npy", RANDOM), "--ids", w.dataset / "images.csv"],
            ["f.npy"])),
        Case("add-features: a .npz cut in half", lambda w, d: Call(
            ["add-features", copy(w.dataset, d / "ds"), _half_npz(d)], ["e.npz"])),
        Case("add-features: a CSV not UTF-8", lambda w, d: Call(
            ["add-features", copy(w.dataset, d / "ds"), put(d / "f.csv", b"image_id,f0\nimg0000," + NOT_UTF8)],
            ["f.csv"])),
        Case("add-features: the dataset already has features", lambda w, d: Call(
            ["add-features", _with_features(w, d), _features_csv(w, d)], ["already has image features",
                                                                          "--force"])),
        Case("add-features: the dataset folder is read-only", lambda w, d: Call(
            ["add-features", (ds := copy(w.dataset, d / "ds")), _features_csv(w, d)], ["ds"], locked=ds)),
        Case("embed-images: --model of random bytes", lambda w, d: Call(
            ["embed-images", copy(w.dataset, d / "ds"), "--model", put(d / "m.pt", RANDOM), "--arch", "resnet18",
             "--device", "cpu"], ["m.pt", "not a torch state dict"])),
        Case("embed-images: --model a folder of another kind", lambda w, d: Call(
            ["embed-images", copy(w.dataset, d / "ds"), "--model", put(d / "model" / "config.json", RANDOM).parent,
             "--device", "cpu"], ["model", "cannot load a Hugging Face model"])),
        Case("embed-images: the dataset folder is read-only", lambda w, d: Call(
            ["embed-images", (ds := copy(w.dataset, d / "ds")), "--model", d / "none.pt", "--device", "cpu"],
            ["ds"], locked=ds)),
        Case("embed-images: a dataset of features has no images", lambda w, d: Call(
            ["embed-images", copy(w.features_dataset, d / "ds"), "--model", d / "none.pt", "--device", "cpu",
             "--force"], ["ds", "has no images to embed"])),
        Case("ingest table: --features missing images, before any image is decoded", lambda w, d: Call(
            table(w, w.labels, d / "out", "--features", put(d / "f.csv", "image_id,f0\na.png,1\n")),
            ["f.csv", "have no feature vector"])),
        Case("ingest answers: answers of random bytes", lambda w, d: Call(
            _answers(w, d, answers=put(d / "a.txt", RANDOM)), ["a.txt"])),
        Case("ingest answers: a word among the answers", lambda w, d: Call(
            _answers(w, d, answers=put(d / "a.txt", (w.crowd.root / "answers.txt").read_text().replace(
                "0", "zero", 1))), ["a.txt", "line", "column", "'zero'"])),
        Case("ingest answers: a line with a missing column", lambda w, d: Call(
            _answers(w, d, answers=put(d / "a.txt", "0 1 2\n0 1\n")), ["a.txt", "line 2"])),
        Case("ingest answers: truth of another length", lambda w, d: Call(
            _answers(w, d, truth=put(d / "t.txt", "0\n1\n")), ["t.txt", "2 rows"])),
        Case("ingest answers: a negative class id", lambda w, d: Call(
            _answers(w, d, truth=put(d / "t.txt", "-4\n" * 16)), ["-4"])),
        Case("ingest answers: features with a NaN", lambda w, d: Call(
            _answers(w, d, features=_nan_features(w, d)), ["f.npy", "finite"])),
        Case("ingest answers: an unknown split", lambda w, d: Call(
            ["ingest", "answers", "--answers", f"holdout={w.crowd.root / 'answers.txt'}", "--out", d / "out"],
            ["--answers", "'holdout'"])),
        Case("ingest answers: --labellers naming too few workers", lambda w, d: Call(
            [*_answers(w, d), "--labellers", "a,b"], ["--labellers", "2 labellers"])),
        Case("ingest answers: --classes naming too few classes", lambda w, d: Call(
            [*_answers(w, d), "--classes", "one"], ["--classes", "1 classes"])),
        Case("train: --input features on a dataset without features", lambda w, d: Call(
            ["train", w.dataset, "--out", d / "run", "--input", "features", "--epochs", "1", *TRAIN_FAST],
            ["no image features", "add-features"])),
        Case("train: --input images on a dataset of features", lambda w, d: Call(
            ["train", w.features_dataset, "--out", d / "run", "--input", "images", "--epochs", "1", *TRAIN_FAST],
            ["crowd-ds", "no image cache", "--input features"])),
        Case("train: an unknown --head", lambda w, d: Call(
            ["train", w.features_dataset, "--out", d / "run", "--head", "transformer", "--epochs", "1", *TRAIN_FAST],
            ["--head", "'transformer'"])),
        Case("train: --head-dropout 1", lambda w, d: Call(
            ["train", w.features_dataset, "--out", d / "run", "--head-dropout", "1", "--epochs", "1", *TRAIN_FAST],
            ["--head-dropout", "[0, 1)"])),
        Case("train: features.npy of random bytes", lambda w, d: Call(
            ["train", _damaged_features(w, d, "features.npy", RANDOM), "--out", d / "run", "--epochs", "1",
             *TRAIN_FAST], ["features.npy"])),
        Case("info: features.json of random bytes", lambda w, d: Call(
            ["info", _damaged_features(w, d, "features.json", RANDOM)], ["features.json"])),
        Case("train: features.npy of another length than the images", lambda w, d: Call(
            ["train", _damaged_features(w, d, "features.npy", None), "--out", d / "run", "--epochs", "1",
             *TRAIN_FAST], ["features.npy", "shape [31, 6]"])),
        *[Case(f"{command}: a run on features, a dataset without features", lambda w, d, argv=argv: Call(
            argv(w, d), ["no image features", "add-features"]))
          for command, argv in {
              "predict": lambda w, d: ["predict", w.features_run, w.dataset, "--out", d / "p.csv"],
              "export-labels": lambda w, d: ["export-labels", w.features_run, w.dataset, "--out", d / "e.csv"],
              "evaluate": lambda w, d: ["evaluate", w.features_run, "-d", w.dataset, "--out", d / "ev"]}.items()],
    ]


def _npy(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return path


def _nan_features(w: World, d: Path) -> Path:
    vectors = np.load(w.crowd.root / "features_train.npy")
    vectors[3, 1] = np.nan
    return _npy(d / "f.npy", vectors)


def _damaged_features(w: World, d: Path, file: str, data: bytes | None) -> Path:
    """A copy of the world's dataset of features with ``file`` replaced by ``data`` (None: one row too few)."""
    ds = copy(w.features_dataset, d / "ds")
    if data is None:
        np.save(ds / file, np.load(ds / file)[:-1])
    else:
        (ds / file).write_bytes(data)
    return ds


def label_only_cases() -> list[Case]:
    """Label-only fusion and fused labels: bad options of ``export-labels --aggregator``, bad ``evaluate --fused`` files."""
    def fuse(w: World, d: Path, *extra) -> list:
        return ["export-labels", w.dataset, "--aggregator", *extra, "--out", d / "f.csv"]

    def scored(w: World, fused: Path, *extra) -> list:
        return ["evaluate", "-d", w.dataset, "--fused", fused, "--bootstrap", "0", *extra]

    def edited(w: World, d: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
        frame = pd.read_csv(w.fused, dtype=str, keep_default_na=False)
        return write_csv(d / "f.csv", edit(frame))

    return [
        Case("export-labels: unknown --aggregator", lambda w, d: Call(
            fuse(w, d, "median"), ["--aggregator 'median'", "expected one of majority"])),
        Case("export-labels: --aggregator paper (no label-only part)", lambda w, d: Call(
            fuse(w, d, "paper"), ["--aggregator paper", "no label-only part"])),
        Case("export-labels: --aggregator with a run", lambda w, d: Call(
            ["export-labels", w.run, w.dataset, "--aggregator", "majority", "--out", d / "f.csv"],
            ["--aggregator", "give the dataset alone"])),
        Case("export-labels: a dataset alone without --aggregator", lambda w, d: Call(
            ["export-labels", w.dataset, "--out", d / "f.csv"], ["RUN DATASET", "--aggregator"])),
        Case("export-labels: --label-sets matching nothing", lambda w, d: Call(
            fuse(w, d, "majority", "--label-sets", "reader*"), ["--label-sets 'reader*'", "set0, set1, set2"])),
        Case("export-labels: --label-sets empty", lambda w, d: Call(
            fuse(w, d, "majority", "--label-sets", ","), ["--label-sets", "is empty"])),
        Case("export-labels: unknown --policy", lambda w, d: Call(
            fuse(w, d, "majority", "--policy", "u2"), ["--policy 'u2'", "u0, u1, ignore"])),
        Case("export-labels: reliability over one label set", lambda w, d: Call(
            fuse(w, d, "reliability", "--label-sets", "set0"), ["--aggregator", "at least 2 label sets"])),
        Case("export-labels: --threshold outside (0, 1)", lambda w, d: Call(
            fuse(w, d, "reliability", "--threshold", "1.5"), ["--threshold", "between 0 and 1"])),
        Case("export-labels: unknown --split with --aggregator", lambda w, d: Call(
            fuse(w, d, "majority", "--split", "dev"), ["--split 'dev'"])),
        Case("export-labels: --aggregator to a .txt file", lambda w, d: Call(
            ["export-labels", w.dataset, "--aggregator", "majority", "--out", d / "f.txt"],
            ["f.txt", "unknown table format"])),
        Case("evaluate: --fused file missing", lambda w, d: Call(scored(w, d / "nope.csv"), ["nope.csv"])),
        Case("evaluate: --fused of random bytes", lambda w, d: Call(scored(w, put(d / "f.csv", RANDOM)), ["f.csv"])),
        Case("evaluate: --fused is a predictions file (wrong columns)", lambda w, d: Call(
            scored(w, w.predictions), ["predictions.csv", "missing required column(s)", "'finding'"])),
        Case("evaluate: --fused with a column dropped", lambda w, d: Call(
            scored(w, edited(w, d, lambda f: f.drop(columns="refined"))), ["f.csv", "'refined'"])),
        Case("evaluate: --fused ids of another dataset", lambda w, d: Call(
            scored(w, edited(w, d, lambda f: f.assign(image_id="other-" + f.image_id))),
            ["f.csv", "not in the dataset", "'other-img0000'"])),
        Case("evaluate: --fused with an unknown finding", lambda w, d: Call(
            scored(w, edited(w, d, lambda f: f.assign(finding=f.finding.replace("class1", "Edema")))),
            ["f.csv", "line 3", "column 'finding'", "'Edema'"])),
        Case("evaluate: --fused value outside [0, 1]", lambda w, d: Call(
            scored(w, edited(w, d, lambda f: f.assign(binarised=f.binarised.where(f.index != 0, "2")))),
            ["f.csv", "line 2", "column 'binarised'", "'2'"])),
        Case("evaluate: --fused value a word", lambda w, d: Call(
            scored(w, edited(w, d, lambda f: f.assign(refined=f.refined.where(f.index != 4, "yes")))),
            ["f.csv", "line 6", "column 'refined'", "'yes'"])),
        Case("evaluate: --fused row twice", lambda w, d: Call(
            scored(w, edited(w, d, lambda f: pd.concat([f, f.iloc[[5]]]))), ["f.csv", "img0001"])),
        Case("evaluate: --fused without the test split", lambda w, d: Call(
            scored(w, edited(w, d, lambda f: f[f.image_id < "img0019"])), ["f.csv", "evaluated images"])),
        Case("evaluate: --fused header only", lambda w, d: Call(
            scored(w, put(d / "f.csv", "image_id,finding,refined,binarised\n")), ["f.csv", "no rows"])),
        Case("evaluate: --fused with neither dataset nor labels", lambda w, d: Call(
            ["evaluate", "--fused", w.fused], ["nothing to evaluate"])),
        Case("evaluate: --label-sets without a dataset", lambda w, d: Call(
            ["evaluate", "--fused", w.fused, "--labels", w.queue, "--label-sets", "set0"],
            ["--label-sets", "--dataset"])),
        Case("evaluate: --label-sets matching nothing", lambda w, d: Call(
            ["evaluate", "-d", w.dataset, "--label-sets", "reader*"], ["--label-sets 'reader*'", "matches no"])),
        Case("evaluate: unknown --policy", lambda w, d: Call(
            ["evaluate", "-d", w.dataset, "--policy", "U-Twos"], ["--policy", "'U-Twos'"])),
        Case("evaluate: unknown --split", lambda w, d: Call(
            ["evaluate", "-d", w.dataset, "--split", "dev"], ["--split 'dev'", "all"])),
        Case("evaluate: --fused a label-only export of the dataset, with --split all", lambda w, d: Call(
            scored(w, w.fused, "--split", "all"), ["accuracy"], ok=True)),
    ]


CASES: list[Case] = (ingest_cases() + output_rule_cases() + read_only_cases() + dataset_cases() + run_cases()
                     + table_reader_cases() + label_only_cases() + feature_cases())


# ----------------------------------------------------------------------------- running a case


@dataclass
class Outcome:
    kind: str  # one of KINDS
    detail: str
    files_destroyed: int = 0  # files removed or changed outside what the command may leave


#: How a case can end; only the first two pass.
KINDS = ("clean error", "clean result", "traceback", "silent accept", "destroyed", "unclear", "skipped")


def snapshot(roots: list[Path]) -> dict[str, tuple]:
    """Every path under ``roots``: (size, mtime) for files, a marker for folders and links."""
    listing = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if path.is_symlink() or path.is_dir():
                    listing[str(path)] = ("dir/link",)
                else:
                    stat = path.stat()
                    listing[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return listing


def run_case(case: Case, world: World, folder: Path) -> Outcome:
    """Build the case in ``folder``, run it, and say how it ended."""
    call = case.make(world, folder)
    with ExitStack() as stack:
        if call.locked is not None:
            stack.enter_context(locked_folder(call.locked))
        if call.bypass_precheck:
            stack.enter_context(mock.patch("ltvcli.outputs._check_writable"))
        before = snapshot([world.root, folder])
        result = _invoke(call.args)
        after = snapshot([world.root, folder])
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(result.exception))
        return Outcome("traceback", f"{type(result.exception).__name__}: {result.exception}\n{trace}")
    if "Traceback" in output:
        return Outcome("traceback", output)
    allowed = {str(p) for p in call.leaves}
    removed = [p for p in before if p not in after]
    changed = [p for p in before if p in after and before[p] != after[p]]
    created = [p for p in after if p not in before and not any(p == a or p.startswith(a + os.sep) for a in allowed)]
    if removed or changed:
        return Outcome("destroyed", f"removed {removed[:3]}, changed {changed[:3]}", len(removed) + len(changed))
    if call.ok:
        missing = [text for text in call.expect if text not in output]
        if result.exit_code != 0 or missing:
            return Outcome("unclear", f"expected success saying {missing}; exit {result.exit_code}:\n{output}")
        return Outcome("clean result", f"succeeded, saying {call.expect}")
    if result.exit_code == 0:
        return Outcome("silent accept", output)
    if created:
        return Outcome("destroyed", f"created {created[:3]} (half-written output)")
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    if len(lines) != 1:
        return Outcome("unclear", f"{len(lines)} error lines:\n{output}")
    missing = [text for text in call.expect if text not in lines[0]]
    leaked = [text for text in [*call.forbid, *NEVER_SAID] if text in lines[0]]
    if missing or leaked or result.exit_code != 2:
        return Outcome("unclear", f"exit {result.exit_code}; missing {missing}; leaked {leaked}: {lines[0]}")
    return Outcome("clean error", lines[0])


@contextmanager
def locked_folder(folder: Path) -> Iterator[None]:
    """Make ``folder`` really unwritable: read-only permissions, or (for root, who ignores them) immutable.

    Raises SkipTest-like ``pytest.skip`` when neither works on this system.
    """
    folder.mkdir(exist_ok=True)
    os.chmod(folder, 0o555)
    immutable = False
    try:
        if _writable(folder):  # root: permissions do not stop it
            immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
            if not immutable or _writable(folder):
                pytest.skip("cannot make a folder unwritable here (root without chattr +i)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        os.chmod(folder, 0o755)


def _writable(folder: Path) -> bool:
    try:
        probe = folder / ".probe"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("world"))


def test_the_corpus_is_large_and_names_are_unique():
    names = [case.name for case in CASES]
    assert len(names) >= 80 and len(set(names)) == len(names)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)]
                                               if c.xfail else []) for c in CASES])
def test_bad_input_ends_in_one_clean_line_and_touches_nothing(case, world, tmp_path):
    outcome = run_case(case, world, tmp_path)
    assert outcome.kind in ("clean error", "clean result"), f"{outcome.kind}: {outcome.detail}"


# ----------------------------------------------------------------------------- the tally


def main(verbose: bool = False) -> int:
    """Run every case outside pytest and print the tally (``python tests/test_bad_inputs.py [-v]``).

    ``-v`` also prints each clean case's error line, for reading the messages.
    """
    counts = dict.fromkeys(KINDS, 0)
    expected_failures: dict[str, int] = {}
    destroyed = 0
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp) / "world")
        for number, case in enumerate(CASES):
            folder = Path(tmp) / f"case{number}"
            folder.mkdir()
            try:
                outcome = run_case(case, world, folder)
            except pytest.skip.Exception as exc:
                outcome = Outcome("skipped", str(exc))
            destroyed += outcome.files_destroyed
            if case.xfail:
                key = f"{outcome.kind} (expected until: {case.xfail})"
                expected_failures[key] = expected_failures.get(key, 0) + 1
            else:
                counts[outcome.kind] += 1
            clean = outcome.kind in ("clean error", "clean result")
            if not clean or verbose:
                print(f"[{outcome.kind}] {case.name}: {outcome.detail.splitlines()[0] if outcome.detail else ''}")
    print(f"\n{len(CASES)} cases")
    for kind, count in counts.items():
        print(f"  {kind:15s} {count}")
    for key, count in expected_failures.items():
        print(f"  {key}: {count}")
    print(f"  files destroyed {destroyed}")
    return 0


if __name__ == "__main__":
    sys.exit(main(verbose="-v" in sys.argv[1:]))
