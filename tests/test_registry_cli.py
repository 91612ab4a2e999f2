"""``ltv train``'s method options come from the fusion registry: flags, help, choices, warnings, the record."""

from __future__ import annotations

import re

from conftest import make_dataset
from helpers_train import TRAIN_FAST
from ltvcli.fusion.registry import METHOD_NAMES, METHODS, VOTES, LtvOptions
from ltvcli.runs.record import RunRecord, read_record


def _help(cli) -> str:
    text = cli("train", "--help").output
    return re.sub(r"[│╭╮╰╯─]", " ", text)  # the box drawing of the rich help, not its words


def test_every_declared_method_option_is_a_flag_with_its_methods_and_help(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    text = " ".join(_help(cli).split())
    for spec in METHODS:
        for item in spec.options.declared():
            if item.name == "seed":  # shared with the run: one --seed
                continue
            flag = "--" + item.name.replace("_", "-")
            assert re.search(rf"{flag} .*?{re.escape(item.rule.help[:30])}", text), flag
    assert "ltv --vote reliability: a label set to treat as the truth" in text
    assert f"[{'|'.join(METHOD_NAMES)}]" in text and f"[{'|'.join(VOTES)}]" in text
    assert "[all|last]" in text and "[tiny|resnet18|resnet34|resnet50]" in text and "[auto|cuda|cpu]" in text
    assert text.count("--seed") == 1


def test_options_of_other_methods_are_ignored_with_a_warning(cli, tmp_path):
    data = make_dataset(tmp_path / "ds", n=30)
    run = tmp_path / "run"
    result = cli("train", data.path, "--out", run, "--method", "cm", "--alpha", "0.5", "--vote", "reliability",
                 "--cm-trace", "0.05", "--epochs", "1", "--max-steps", "1", *TRAIN_FAST)
    assert ("warning: --alpha applies to --method ltv --vote paper, --method ltv --vote reliability only; ignored "
            "by --method cm") in result.output
    assert "warning: --vote applies to --method ltv only; ignored by --method cm" in result.output
    record = read_record(run, RunRecord)
    assert record.config.method_options.cm_trace == 0.05 and "alpha" not in record.config.to_json()


def test_the_record_holds_the_methods_typed_options(cli, tmp_path):
    data = make_dataset(tmp_path / "ds", n=30)
    run = tmp_path / "run"
    cli("train", data.path, "--out", run, "--vote", "paper", "--k", "20", "--epochs", "1", "--max-steps", "1", *TRAIN_FAST)
    options = read_record(run, RunRecord).config.method_options
    assert options == LtvOptions(k=20.0)
