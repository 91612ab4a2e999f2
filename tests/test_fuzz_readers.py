"""Property-based fuzzing of every table reader: a file either loads or is refused in one line.

For each reader of a user's CSV (the ingest sources' tables, hand labels,
predictions, answered queues, imported embeddings), Hypothesis writes files
of three kinds -- random bytes, a valid header over random cells, random
headers over random cells -- and the reader must return or raise
:class:`~ltvcli.errors.LtvError` whose message is one line. Any other
exception is a crash a user would see as a traceback.

The examples are derandomized (the same ones on every run, so CI is
reproducible) and few per reader, to keep the module to seconds;
``LTV_FUZZ_EXAMPLES=2000`` searches harder (with another seed each run if
``LTV_FUZZ_RANDOM=1``).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_dataset
from helpers_ingest import write_mimic, write_openi_kaggle
from ltvcli import csvio
from ltvcli.errors import LtvError
from ltvcli.evaluate import load_inputs
from ltvcli.evaluate.tables import read_labels, read_predictions
from ltvcli.findings import FINDINGS
from ltvcli.ingest.handlabels import read_hand_labels
from ltvcli.ingest.mimic import mimic_spec
from ltvcli.ingest.openi import openi_spec
from ltvcli.ingest.table import table_spec
from ltvcli.refine.relabels import read_answers
from ltvcli.text.imported import align_to_images, read_embedding_file

EXAMPLES = settings(max_examples=int(os.environ.get("LTV_FUZZ_EXAMPLES", 25)), deadline=None,
                    derandomize=not os.environ.get("LTV_FUZZ_RANDOM"), database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Cells and names that stress a CSV reader: separators, quotes, line breaks, blanks, numbers, odd Unicode.
TOKENS = st.sampled_from(["", " ", ",", ";", '"', "\n", "\r\n", "\t", "0", "1", "-1", "1.0", "0.5", "nan", "2",
                          "x", "a.png", "../a.png", "/etc/hostname", "img0000", "class0", "train", "test", "validate",
                          "yes", "é", "\u2028", "\x00", "Edema", "image", "image_id", "study_id", "label"])
CELL = st.one_of(st.text(max_size=8), TOKENS)


def _csv(rows: list[list[str]], quoted: bool) -> bytes:
    """Rows as CSV text: properly quoted (line breaks inside cells) or joined raw (a broken structure)."""
    if quoted:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        return buffer.getvalue().encode("utf-8", errors="surrogatepass")
    return "\n".join(",".join(row) for row in rows).encode("utf-8", errors="surrogatepass")


def files(header: list[str]) -> st.SearchStrategy[bytes]:
    """Random bytes; ``header`` over random cells; random headers over random cells."""
    valid_header = st.builds(lambda rows, quoted: _csv([header, *rows], quoted),
                             st.lists(st.lists(CELL, min_size=len(header), max_size=len(header)), max_size=5),
                             st.booleans())
    random_header = st.builds(lambda head, rows, quoted: _csv([head, *rows], quoted),
                              st.lists(CELL, min_size=1, max_size=5),
                              st.lists(st.lists(CELL, max_size=6), max_size=5), st.booleans())
    return st.one_of(st.binary(max_size=200), valid_header, random_header)


def loads_or_refuses_in_one_line(read: Callable[[], object]) -> None:
    try:
        read()
    except LtvError as exc:
        assert "\n" not in str(exc) and str(exc).strip(), repr(str(exc))


class World(dict):
    """Valid companions for the readers that need them; printed short in a falsifying example."""

    def __repr__(self) -> str:
        return "world"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "images").mkdir()
    return World(root=root, dataset=make_dataset(root / "ds", n=12, size=8), mimic=write_mimic(root / "mimic"),
                 kaggle=write_openi_kaggle(root / "kaggle"))


def _write(world, name: str, data: bytes) -> Path:
    path = world["root"] / name
    path.write_bytes(data)
    return path


@EXAMPLES
@given(data=files(["image", "reader"]))
def test_read_table(world, data):
    loads_or_refuses_in_one_line(lambda: csvio.read_table(_write(world, "t.csv", data), required=("image",)))


@EXAMPLES
@given(data=files(["image", "labeller", "label", "split"]))
def test_ingest_table_labels(world, data):
    path = _write(world, "labels.csv", data)
    loads_or_refuses_in_one_line(lambda: table_spec(path, images=world["root"] / "images"))


@EXAMPLES
@given(data=files(["image", "labeller", "finding", "value"]))
def test_ingest_table_long_labels_and_ground_truth(world, data):
    truth = _write(world, "truth.csv", data)
    labels = _write(world, "valid.csv", b"image,labeller,finding,value\na.png,r1,Edema,1\nb.png,r1,Edema,0\n")
    loads_or_refuses_in_one_line(lambda: table_spec(labels, images=world["root"] / "images", ground_truth=truth))


@EXAMPLES
@given(data=files(["dicom_id", "Edema", "Atelectasis"]))
def test_hand_labels(world, data):
    path = _write(world, "hand.csv", data)
    loads_or_refuses_in_one_line(lambda: read_hand_labels(path, image_keys=("dicom_id",), group_keys=("study_id",)))


@EXAMPLES
@given(data=files(["dicom_id", "subject_id", "study_id", "ViewPosition"]), which=st.sampled_from(
    ["metadata", "split", "negbio", "chexpert"]))
def test_mimic_tables(world, data, which):
    files_ = world["mimic"]
    paths = {"metadata": files_.metadata, "split": files_.split, "negbio": files_.negbio,
             "chexpert": files_.chexpert}
    paths[which] = _write(world, f"{which}.csv", data)
    loads_or_refuses_in_one_line(lambda: mimic_spec(**paths, images=files_.images))


@EXAMPLES
@given(data=files(["study_id", *FINDINGS[:3]]))
def test_mimic_label_table_with_findings(world, data):
    files_ = world["mimic"]
    path = _write(world, "negbio2.csv", data)
    loads_or_refuses_in_one_line(lambda: mimic_spec(metadata=files_.metadata, split=files_.split, negbio=path,
                                                    chexpert=files_.chexpert, images=files_.images))


@EXAMPLES
@given(data=files(["uid", "filename", "projection"]), which=st.sampled_from(["reports", "projections"]))
def test_openi_tables(world, data, which):
    reports, projections, images = world["kaggle"]
    paths = {"reports": reports, "projections": projections}
    paths[which] = _write(world, f"{which}.csv", data)
    loads_or_refuses_in_one_line(lambda: openi_spec(**paths, images=images))


@EXAMPLES
@given(data=files(["image", "class0", "class1", "class2"]))
def test_evaluation_hand_labels(world, data):
    path = _write(world, "gt.csv", data)
    dataset = world["dataset"]
    loads_or_refuses_in_one_line(lambda: read_labels(path))
    loads_or_refuses_in_one_line(lambda: load_inputs(dataset=dataset, labels=path))


@EXAMPLES
@given(data=files(["image", "class0", "class1", "class2"]))
def test_predictions(world, data):
    path = _write(world, "pred.csv", data)
    loads_or_refuses_in_one_line(lambda: read_predictions(path))
    loads_or_refuses_in_one_line(lambda: load_inputs(dataset=world["dataset"], predictions=[path]))


@EXAMPLES
@given(data=files(["image_id", "finding", "expert"]))
def test_answered_queue(world, data):
    path = _write(world, "queue.csv", data)
    loads_or_refuses_in_one_line(lambda: read_answers(path, world["dataset"]))


@EXAMPLES
@given(data=files(["image_id", "e0", "e1"]))
def test_imported_embeddings(world, data):
    path = _write(world, "emb.csv", data)
    loads_or_refuses_in_one_line(lambda: align_to_images(world["dataset"], read_embedding_file(path), path))
