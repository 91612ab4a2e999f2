"""Help pages: every command's, as a user reads them (`ltv ... --help` through the CLI)."""

from __future__ import annotations

import importlib
import re

import pytest
import typer.main

from ltvcli.cli import app, choices


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the app, e.g. ('train',), ('ingest',), ('ingest', 'mimic')."""
    paths = []

    def walk(group, prefix):
        for name, command in group.commands.items():
            paths.append(prefix + (name,))
            if hasattr(command, "commands"):
                walk(command, prefix + (name,))

    walk(typer.main.get_command(app), ())
    return paths


@pytest.mark.parametrize("path", [(), *command_paths()], ids=lambda path: " ".join(path) or "ltv")
def test_help_names_values_the_conventional_way(cli, path):
    out = cli(*path, "--help").output
    assert out.startswith("Usage: ")
    assert not re.search(r"<(str|bool|int|float|path|file|dir)>", out), out  # Typer 0.29's type tags
    assert not re.search(r"\{[a-z_]+\}", out.splitlines()[0]), out  # a required argument as {dataset}
    assert not re.search(r"--[a-z-]+ (BOOLEAN|<bool>)", out), out  # a flag takes no value


def test_arguments_are_upper_case_in_usage_and_list(cli):
    out = cli("predict", "--help").output
    assert out.splitlines()[0].endswith("predict [OPTIONS] RUN DATASET")
    assert re.search(r"^  RUN +A run folder", out, re.M) and re.search(r"^  DATASET +The dataset", out, re.M)
    assert "[[NAME=]RUN]..." in cli("evaluate", "--help").output.splitlines()[0]
    out = cli("export-labels", "--help").output
    assert out.splitlines()[0].endswith("export-labels [OPTIONS] [RUN] [DATASET]")  # RUN DATASET, or DATASET alone
    assert re.search(r"^  RUN +A run folder", out, re.M) and re.search(r"^  DATASET +The dataset", out, re.M)


@pytest.mark.parametrize("path, option, names", [
    (("demo",), "--arch", choices.ARCHS),
    (("refine",), "--arch", choices.ARCHS),
    (("refine-sim",), "--device", choices.DEVICES),
    (("predict",), "--device", choices.DEVICES),
    (("predict",), "--checkpoint", choices.CHECKPOINTS),
    (("export-labels",), "--split", choices.SPLITS + ("all",)),
    (("export-labels",), "--policy", choices.UNCERTAIN_POLICIES),
    (("evaluate",), "--unknown-ids", choices.UNKNOWN_IDS),
    (("embed-reports",), "--pooling", choices.POOLINGS),
    (("info",), "--split", choices.SPLITS),
    (("ingest", "mimic"), "--image-format", choices.IMAGE_FORMATS),
    (("ingest", "mimic"), "--blank", choices.BLANK_POLICIES),
    (("ingest", "table"), "--task", choices.TABLE_TASKS),
    (("ingest", "npz"), "--task", choices.NPZ_TASKS),
    (("refine",), "--candidates", choices.CANDIDATES),
    (("refine",), "--input", choices.INPUTS),
    (("refine-sim",), "--head", choices.HEADS),
    (("train",), "--input", choices.INPUTS),
    (("train",), "--head", choices.HEADS),
    (("embed-images",), "--arch", choices.RESNETS),
])
def test_options_that_take_a_name_list_their_choices(cli, path, option, names):
    out = cli(*path, "--help").output
    assert f"{option} [{'|'.join(names)}]" in out


@pytest.mark.parametrize("mirror, source", [
    ("ARCHS", "ltvcli.models:ARCHS"),
    ("DEVICES", "ltvcli.runtime.device:DEVICES"),
    ("SPLITS", "ltvcli.dataset.format:SPLITS"),
    ("CHECKPOINTS", "ltvcli.runs.folder:CHECKPOINTS"),
    ("POOLINGS", "ltvcli.text.encode:POOLINGS"),
    ("UNKNOWN_IDS", "ltvcli.evaluate.tables:UNKNOWN_ID_POLICIES"),
    ("IMAGE_FORMATS", "ltvcli.ingest.mimic:IMAGE_FORMATS"),
    ("MISSING_LABELS", "ltvcli.ingest.mimic:MISSING_LABELS"),
    ("BLANK_POLICIES", "ltvcli.dataset.labelsets:BLANK_POLICIES"),
    ("UNCERTAIN_POLICIES", "ltvcli.dataset.labelsets:UNCERTAIN_POLICIES"),
    ("NPZ_TASKS", "ltvcli.ingest.npz:TASKS"),
    ("STRATEGIES", "ltvcli.refine.scores:STRATEGIES"),
    ("CANDIDATES", "ltvcli.refine.queue:CANDIDATES"),
])
def test_help_choices_are_the_names_the_api_accepts(mirror, source):
    module, name = source.split(":")
    assert getattr(choices, mirror) == getattr(importlib.import_module(module), name)


def test_table_tasks_are_auto_and_the_dataset_tasks():
    from ltvcli.dataset.format import TASKS

    assert choices.TABLE_TASKS == ("auto", *TASKS)


def test_a_bad_choice_is_still_the_api_one_line_error(cli, tiny_dataset):
    result = cli("info", tiny_dataset.path, "--split", "dev", ok=False)
    assert result.exit_code == 2
    assert result.output.strip() == "error: --split 'dev': expected one of train, validate, test"


def test_simulate_matrices_help_shows_its_example_intact(cli):
    out = cli("simulate", "--help").output
    assert re.search(r'^ +\{"resident": \[\[0\.9, 0\.1\], \[0\.3, 0\.7\]\]\}$', out, re.M), out


def test_global_options_are_on_the_top_level_help_only(cli):
    top = cli("--help").output
    assert re.search(r"^  -q, --quiet +Only errors", top, re.M)
    assert "--quiet" not in cli("train", "--help").output


def test_the_command_list_wraps_instead_of_cutting_a_summary(cli):
    listed = cli("--help").output.split("Commands:")[1]
    assert "..." not in listed
    assert "demo Generate a small synthetic MIMIC-CXR example and run ltv on it end to end. " in " ".join(
        listed.split())
