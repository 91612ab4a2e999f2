"""Progress bars on a terminal only: a log file gets the result lines, once each."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from ltvcli import console as shared


@pytest.fixture
def terminal(monkeypatch):
    """The shared console believes it writes to a terminal."""
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))


def test_off_a_terminal_training_prints_each_epoch_line_once_and_no_bar(cli, tiny_dataset, tmp_path):
    result = cli("train", tiny_dataset.path, "--out", tmp_path / "run", "--method", "mv", "--epochs", "2",
                 "--arch", "tiny", "--batch-size", "8", "--device", "cpu", "--workers", "0")
    assert re.findall(r"^epoch (\d+): loss", result.output, re.M) == ["1", "2"]
    assert "━" not in result.output and "epoch 1/2" not in result.output


def test_on_a_terminal_track_draws_a_bar(terminal):
    assert shared.progress_bars()
    out = io.StringIO()
    with shared.console_to(out), shared.track(3, "reading") as advance:
        advance(3)
    assert "reading" in out.getvalue() and "━" in out.getvalue()


def test_quiet_draws_no_bar_even_on_a_terminal(terminal, monkeypatch):
    monkeypatch.setattr(shared, "_verbosity", 0)
    assert not shared.progress_bars()


def test_console_to_sends_output_to_a_file_and_then_back_to_stderr(capsys):
    out = io.StringIO()
    with shared.console_to(out):
        shared.log("into the file")
    shared.log("onto stderr")
    assert out.getvalue() == "into the file\n"
    assert capsys.readouterr().err == "onto stderr\n"
