"""``ltv demo`` end to end on a small example: generate, ingest, summarise, train, export, evaluate."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import Cli

from ltvcli.dataset import Dataset

QUICK = ("--size", "32", "--subjects", "16", "--epochs", "1", "--jobs", "1")  # one job: in this process, no start-up
TABLE_LINE = re.compile(r"^[┏┃┡│├└]")  # rich's table borders


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One demo run shared by the tests that only read its output."""
    out = tmp_path_factory.mktemp("demo") / "run"
    return out, Cli()("demo", "--out", out, *QUICK)


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory):
    """Three of the demo's runs two at a time (each an `ltv train` child process), on an 80-column terminal."""
    out = tmp_path_factory.mktemp("demo") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "80")
        return out, Cli()("demo", "--out", out, *QUICK, "--methods", "mv,ltv", "--jobs", "2")  # the last --jobs


def test_demo_builds_a_frontal_dataset_with_four_label_sets_and_test_ground_truth(demo_run):
    out, result = demo_run
    dataset = Dataset.open(out / "dataset")
    assert dataset.label_set_names == ["negbio_u0", "negbio_u1", "chexpert_u0", "chexpert_u1"]
    assert dataset.image_size == 32 and dataset.task == "multilabel" and len(dataset.classes) == 14

    metadata = pd.read_csv(out / "source" / "mimic-cxr-2.0.0-metadata.csv.gz", dtype=str)
    frontal = metadata[metadata["ViewPosition"].isin(["PA", "AP"])]
    assert len(frontal) < len(metadata)  # the source has laterals, and the view filter dropped them
    assert sorted(dataset.image_ids) == sorted(frontal["dicom_id"])
    assert set(dataset.manifest["view"]) <= {"PA", "AP"}

    labelled = (dataset.ground_truth != -1).any(axis=1)
    test = np.zeros(len(dataset), dtype=bool)
    test[dataset.indices("test")] = True
    assert test.any() and (labelled == test).all()

    assert (dataset.manifest["report"] != "").all()  # every study's report was found
    assert "negbio_u0" in result.output and "ground truth, test" in result.output


def test_demo_trains_every_method_exports_and_evaluates(demo_run):
    out, result = demo_run
    for method in ("single", "mv", "cm", "ltv"):
        assert (out / "runs" / method / "best.pt").is_file()
    labels = pd.read_csv(out / "ltv-labels.csv")
    dataset = Dataset.open(out / "dataset")
    assert set(labels["image_id"]) == set(dataset.image_ids[dataset.indices("train")])
    weights = labels[[f"weight_{name}" for name in dataset.label_set_names]].to_numpy()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    scores = pd.read_csv(out / "evaluation" / "auc.csv")
    assert {"single", "mv", "cm", "ltv", "negbio_u1"} <= set(scores["model"])
    assert "ltv vs single" in result.output  # the paired comparison the demo asks for


def test_demo_trains_single_and_ltv_with_report_text_too(demo_run):
    out, result = demo_run
    dataset = Dataset.open(out / "dataset")
    vectors = np.load(out / "dataset" / "text_embeddings.npy")
    assert vectors.shape[0] == len(dataset) and np.isfinite(vectors).all()
    for name in ("single+text", "ltv+text"):
        config = json.loads((out / "runs" / name / "config.json").read_text())
        assert config["options"]["text"] is True and config["text"]["dim"] == vectors.shape[1]
    for name in ("single", "ltv"):
        assert json.loads((out / "runs" / name / "config.json").read_text())["text"] is None
    scores = pd.read_csv(out / "evaluation" / "auc.csv")
    assert {"single+text", "ltv+text"} <= set(scores["model"])
    assert "average AUC image -> image+text: single" in result.output


def test_rerun_reuses_the_source_and_rebuilds_the_same_dataset(demo_run, cli):
    out, _ = demo_run
    before = np.asarray(Dataset.open(out / "dataset").images).copy()
    stamp = (out / "source" / "demo.json").stat().st_mtime_ns
    result = cli("demo", "--out", out, *QUICK)
    assert "reused" in result.output
    assert (out / "source" / "demo.json").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(np.asarray(Dataset.open(out / "dataset").images), before)


def test_another_seed_regenerates_the_source(tmp_path, cli):
    out = tmp_path / "run"
    cli("demo", "--out", out, *QUICK, "--seed", "1", "--no-text")
    first = (out / "source" / "mimic-cxr-2.0.0-chexpert.csv.gz").read_bytes()
    result = cli("demo", "--out", out, *QUICK, "--seed", "2", "--no-text")
    assert "reused" not in result.output
    assert (out / "source" / "mimic-cxr-2.0.0-chexpert.csv.gz").read_bytes() != first
    assert "skipped (--no-text)" in result.output and not (out / "runs" / "ltv+text").exists()


def test_refuses_a_folder_that_is_not_a_demo_folder(tmp_path, cli):
    (tmp_path / "notes.txt").write_text("keep me")
    result = cli("demo", "--out", tmp_path, *QUICK, ok=False)
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1
    assert str(tmp_path) in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_too_few_subjects_is_a_clear_error(tmp_path, cli):
    result = cli("demo", "--out", tmp_path / "run", "--subjects", "2", ok=False)
    assert result.exit_code == 2 and "at least 4 subjects" in result.output
    assert not (tmp_path / "run").exists()


def test_demo_shows_the_info_tables_with_the_ingest_step(parallel_run):
    _, result = parallel_run
    ingest, embed = result.output.index("[2/6] ingesting"), result.output.index("[3/6] embedding")
    for table in ("label sets, train split", "raw labeller output, train split", "ground truth, test"):
        assert ingest < result.output.index(table) < embed


def test_demo_announces_each_training_by_name(parallel_run):
    _, result = parallel_run
    announced = re.findall(r"^ +training ([a-z+]+): ", result.output, re.M)
    assert announced == ["ltv", "ltv+text", "mv"]  # the long runs first
    for name in announced:
        assert re.search(rf"^ +trained {re.escape(name)}: best validation auc ", result.output, re.M)
        log = (parallel_run[0] / "runs" / f"{name}.log").read_text()
        assert "epoch 1: loss" in log and "━" not in log  # the run's own lines, no progress bar


def test_each_run_is_the_ltv_train_command_written_atop_its_log(parallel_run):
    out, _ = parallel_run
    first = (out / "runs" / "ltv+text.log").read_text().splitlines()[0]
    assert first == (f"ltv train {out / 'dataset'} --out {out / 'runs' / 'ltv+text'} --method ltv --epochs 1 "
                     "--arch tiny --lr 0.001 --seed 0 --workers 0 --text")


def test_one_job_in_this_process_trains_the_same_runs_as_two_side_by_side(demo_run, parallel_run):
    here, out = demo_run[0], parallel_run[0]
    for name in ("mv", "ltv", "ltv+text"):
        configs = [json.loads((root / "runs" / name / "config.json").read_text()) for root in (out, here)]
        assert configs[0]["options"] == configs[1]["options"] | {"dataset": configs[0]["options"]["dataset"],
                                                                 "out": configs[0]["options"]["out"]}
        metrics = [pd.read_csv(root / "runs" / name / "metrics.csv") for root in (out, here)]
        pd.testing.assert_frame_equal(*(m.drop(columns=["img_per_s"]) for m in metrics))  # one thread: same numbers


def test_demo_tables_fit_80_columns_without_cut_cells(parallel_run):
    _, result = parallel_run
    tables = [line for line in result.output.splitlines() if TABLE_LINE.match(line)]
    assert tables and max(map(len, tables)) <= 80
    assert "…" not in result.output
    for name in ("negbio_u0", "chexpert_u1", "mv", "ltv+text"):  # every column is there, uncut
        assert re.search(rf"┃ +{re.escape(name)} ┃", result.output)
    assert re.search(r"^│ Average +│(?: +(?:\d\.\d{3}|n/a) │){4}$", result.output, re.M)  # the label sets


def test_demo_summary_shows_the_vote_of_each_ltv_run(parallel_run):
    _, result = parallel_run
    assert "learning-to-vote: mean vote weight of each label set at the best epoch" in result.output
    assert re.search(r"^│ ltv +│ +1 │(?: +\d\.\d\d │){4}$", result.output, re.M)
    assert "ltv+text: the vote neither collapsed onto one label set nor stayed uniform" in result.output


@pytest.mark.parametrize("thresholds, said", [
    ({"COLLAPSE_WEIGHT": 0.0}, r"ltv: the vote collapsed onto (negbio|chexpert)_u[01] in epoch.*\n(.*\n)*"
                               r"  collapsed = one label set's mean weight above 0.9: training follows it alone"),
    ({"COLLAPSE_WEIGHT": 1.0, "UNIFORM_ENTROPY": 0.0, "UNIFORM_SPREAD": 1.0},
     r"ltv: the vote stayed uniform in epochs 1-2 of 2\n"
     r"  uniform = every label set weighed alike: the vote is a majority vote"),
], ids=["collapsed", "uniform"])
def test_demo_summary_says_when_the_vote_degenerated(tmp_path, cli, monkeypatch, thresholds, said):
    for name, value in thresholds.items():  # make ltv train flag every epoch; --jobs 1 trains in this process
        monkeypatch.setattr(f"ltvcli.train.diagnostics.{name}", value)
    result = cli("demo", "--out", tmp_path / "run", "--size", "32", "--subjects", "16", "--epochs", "2",
                 "--methods", "ltv", "--no-text", "--jobs", "1")
    summary = result.output[result.output.index("learning-to-vote: mean vote weight"):]
    assert re.search(said, summary), summary


def test_jobs_must_be_at_least_one(tmp_path, cli):
    result = cli("demo", "--out", tmp_path / "run", *QUICK, "--jobs", "0", ok=False)
    assert result.exit_code == 2 and result.output.strip() == "error: --jobs 0: expected at least 1 training at a time"


def test_a_training_that_fails_stops_the_demo_with_its_own_error_line(tmp_path, cli):
    result = cli("demo", "--out", tmp_path / "run", *QUICK, "--jobs", "2", "--methods", "mv,cm", "--no-text",
                 "--lr", "0", ok=False)
    assert result.exit_code == 2
    error = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"error: training (mv|cm) failed: --lr 0\.0: expected a positive number \(see .*(mv|cm)\.log\)",
                        error), error
