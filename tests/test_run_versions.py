"""Run folders written by ltv 0.1.0 (record version 1, checkpoint format 1) still export, predict and evaluate;
a version this ltv does not know is refused in one line that names it.

The old folders are made here, not committed: a run trained today is rewritten
into the 0.1.0 layout -- config.json without ``kind``/``version`` and with
every method's options, and a checkpoint of format 1, where ``single`` on
Dawid-Skene kept its matrices as ``ds_confusion``/``ds_prior``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import make_dataset
from helpers_train import TRAIN_FAST

#: Every method option ltv 0.1.0 wrote into config.json, with its default then.
V1_METHOD_OPTIONS = {"label_set": None, "alpha": 0.2, "k": 50.0, "threshold": 0.5, "meta_scope": "all",
                     "vote": "paper", "trusted": None, "model_evidence": 0.0, "cm_trace": 0.01, "seed": 0}


#: The run options record version 3 added (what the model reads).
V3_OPTIONS = ("input", "head", "head_width", "head_dropout")


def as_version_1(run: Path) -> None:
    """Rewrite a run folder in place into the layout ltv 0.1.0 wrote."""
    record = json.loads((run / "config.json").read_text())
    options = {**V1_METHOD_OPTIONS, **{k: v for k, v in record["options"].items() if k not in V3_OPTIONS}}
    method_options = {name: options[name] for name in V1_METHOD_OPTIONS}
    old = {key: value for key, value in record.items() if key not in ("kind", "version", "features")}
    (run / "config.json").write_text(json.dumps({**old, "options": options, "method_options": method_options}))
    for which in ("best", "last"):
        state = torch.load(run / f"{which}.pt", weights_only=True)
        extra = state["method"].pop("aggregator._extra_state", None)
        if extra:
            state["method"].update(ds_confusion=extra["confusion_"], ds_prior=extra["prior_"])
        state["format"] = 1
        torch.save(state, run / f"{which}.pt")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "ds", n=30, noise=(0.05, 0.3, 0.3))


def outputs(cli, run: Path, data, out: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What export-labels, predict and evaluate make of ``run``."""
    common = ("--checkpoint", "last", "--device", "cpu")
    cli("export-labels", run, data.path, "--out", out / "labels.csv", "--split", "all", *common)
    cli("predict", run, data.path, "--out", out / "probs.csv", "--split", "all", *common)
    cli("evaluate", f"run={run}", "--dataset", data.path, "--bootstrap", "20", "--out", out / "evaluation", *common)
    return (pd.read_csv(out / "labels.csv"), pd.read_csv(out / "probs.csv"),
            pd.read_csv(out / "evaluation" / "auc.csv"))


@pytest.mark.parametrize("method", [("single", "--label-set", "dawid_skene"), ("ltv", "--vote", "reliability"),
                                    ("cm",)], ids=lambda m: "-".join(m))
def test_a_version_1_run_exports_predicts_and_evaluates_as_before(cli, tmp_path, data, method):
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, "--method", *method, "--epochs", "1", "--max-steps", "1", *TRAIN_FAST)
    today = outputs(cli, run, data, tmp_path / "today")
    as_version_1(run)
    assert "version" not in json.loads((run / "config.json").read_text())
    before = outputs(cli, run, data, tmp_path / "before")
    for new, old in zip(today, before):
        pd.testing.assert_frame_equal(new, old)


def test_a_version_3_crossfit_run_is_read_as_it_was_trained(cli, tmp_path, data):
    """Before version 4 the cross-fitted vote's heads read the classifier's feature (``evidence`` trained) and
    had no temperature; such a run exports, predicts and evaluates as a run of today with T = 1 does."""
    crossfit = ("--method", "ltv", "--vote", "crossfit", "--evidence", "trained")
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, *crossfit, "--epochs", "1", *TRAIN_FAST)
    for which in ("best", "last"):  # today's run with T = 1
        state = torch.load(run / f"{which}.pt", weights_only=True)
        state["method"]["log_temperature"] = torch.zeros(())
        torch.save(state, run / f"{which}.pt")
    today = outputs(cli, run, data, tmp_path / "today")
    record = json.loads((run / "config.json").read_text())
    del record["options"]["evidence"], record["method_options"]["evidence"]
    (run / "config.json").write_text(json.dumps({**record, "version": 3}))
    for which in ("best", "last"):  # the checkpoint of a version 3 run: no temperature
        state = torch.load(run / f"{which}.pt", weights_only=True)
        del state["method"]["log_temperature"]
        torch.save(state, run / f"{which}.pt")
    before = outputs(cli, run, data, tmp_path / "before")
    for new, old in zip(today, before):
        pd.testing.assert_frame_equal(new, old)


def test_a_version_1_run_resumes_exactly(cli, tmp_path, data):
    method = ("--method", "single", "--label-set", "dawid_skene")
    reference, run = tmp_path / "reference", tmp_path / "run"
    cli("train", data.path, "--out", reference, *method, "--epochs", "2", *TRAIN_FAST)
    cli("train", data.path, "--out", run, *method, "--epochs", "1", *TRAIN_FAST)
    as_version_1(run)
    cli("train", data.path, "--out", run, *method, "--epochs", "2", "--resume", *TRAIN_FAST)
    record = json.loads((run / "config.json").read_text())
    assert record["version"] == 4 and record["method_options"] == {"seed": 0, "label_set": "dawid_skene"}
    mine, theirs = (torch.load(folder / "last.pt", weights_only=True)["model"] for folder in (run, reference))
    assert all(torch.equal(mine[name], theirs[name]) for name in theirs)
    metrics = [pd.read_csv(folder / "metrics.csv").drop(columns="img_per_s") for folder in (run, reference)]
    pd.testing.assert_frame_equal(*metrics)


@pytest.mark.parametrize("edit, message", [
    (lambda record, state: record.update(version=7), "record version 7 is not supported (this ltv reads versions 1 "
                                                     "to 4)"),
    (lambda record, state: record.update(kind="refine"), "not an ltv run folder (its config.json is a refine record)"),
    (lambda record, state: state.update(format=9), "checkpoint format 9 is not supported"),
])
def test_an_unknown_version_is_refused_in_one_line(cli, tmp_path, data, edit, message):
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, "--method", "mv", "--epochs", "1", "--max-steps", "1", *TRAIN_FAST)
    record = json.loads((run / "config.json").read_text())
    state = torch.load(run / "best.pt", weights_only=True)
    edit(record, state)
    (run / "config.json").write_text(json.dumps(record))
    torch.save(state, run / "best.pt")
    for command in (("predict", run, data.path, "--out", tmp_path / "p.csv"),
                    ("export-labels", run, data.path, "--out", tmp_path / "e.csv"),
                    ("evaluate", run, "--dataset", data.path)):
        result = cli(*command, "--device", "cpu", ok=False)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "e.csv").exists()
