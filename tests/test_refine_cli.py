"""``ltv refine``, ``ltv ingest relabels`` and ``ltv refine-sim`` through the CLI, on tiny generated data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import Cli, make_dataset
from ltvcli.dataset import Dataset
from ltvcli.refine import CoteachConfig, select, training_targets
from ltvcli.refine.scores import entropy

FAST = ("--arch", "tiny", "--epochs", "3", "--warmup", "1", "--vog-epochs", "2", "--batch-size", "16",
        "--workers", "0", "--device", "cpu")


@pytest.fixture(scope="module")
def refined(tmp_path_factory) -> tuple[Dataset, Path]:
    """A noisy multi-label dataset and a saved selection phase (trained once for the module)."""
    root = tmp_path_factory.mktemp("refine")
    dataset = make_dataset(root / "ds", n=60, noise=(0.2, 0.25, 0.3), seed=3)
    Cli()("refine", dataset.path, "--budget", "1", "--out", root / "warm.csv", "--run", root / "run", *FAST)
    return dataset, root


def _queue(cli, dataset: Dataset, root: Path, name: str, *args: str) -> tuple[pd.DataFrame, str]:
    result = cli("refine", dataset.path, "--out", root / f"{name}.csv", "--run", root / "run", "--force", *FAST,
                 *args)
    return pd.read_csv(root / f"{name}.csv", dtype={"expert": str}, keep_default_na=False), result.output


def _selection(dataset: Dataset, root: Path):
    options = dict(arch="tiny", epochs=3, warmup=1, vog_epochs=2, batch_size=16, workers=0, device="cpu")
    return select(dataset, CoteachConfig(**options), root / "run")


def test_queue_honours_budget_order_and_suspects(cli, refined):
    dataset, root = refined
    queue, output = _queue(cli, dataset, root, "q", "--budget", "6")
    assert "reusing the selection phase" in output
    assert len(queue) == 6
    assert queue["rank"].tolist() == list(range(1, 7))
    assert np.all(np.diff(queue["score"].to_numpy()) <= 0)  # highest value first
    assert set(queue.columns) >= {"image_id", "finding", "label", "set:set0", "set:set1", "set:set2", "probability",
                                  "model", "score", "strategy", "reason", "expert"}
    # the score is the entropy of the model's probability for that finding (rounded in the CSV)
    assert queue["score"].to_numpy() == pytest.approx(entropy(queue[["probability"]].to_numpy(), True)[:, 0],
                                                      abs=1e-3)
    # every queued entry is a suspect (dropped by co-teaching), from the training split
    selection = _selection(dataset, root)
    rows = {image_id: i for i, image_id in enumerate(dataset.image_ids[selection.rows])}
    for image_id, finding in zip(queue["image_id"], queue["finding"]):
        assert selection.suspects[rows[image_id], dataset.class_index(finding)]
    assert all(reason.startswith("dropped by co-teaching") for reason in queue["reason"])
    sheet = (root / "q.html").read_text()
    assert sheet.count("<img") == 6 and "img" in queue["image_id"][0]


def test_queue_never_exceeds_the_candidates(cli, refined):
    dataset, root = refined
    n_suspects = int(_selection(dataset, root).suspects.sum())
    queue, _ = _queue(cli, dataset, root, "big", "--budget", "1000", "--no-sheet")
    assert len(queue) == n_suspects
    assert not (root / "big.html").exists()
    everything, _ = _queue(cli, dataset, root, "all", "--budget", "1000", "--candidates", "all", "--no-sheet",
                           "--strategy", "random")
    assert len(everything) == 36 * 3  # every training entry (60 * 0.6 images x 3 findings)


@pytest.mark.parametrize("strategy", ["least_confidence", "margin", "bald", "coreset", "loss", "random"])
def test_every_strategy_writes_an_ordered_queue(cli, refined, strategy):
    dataset, root = refined
    queue, _ = _queue(cli, dataset, root, strategy, "--budget", "4", "--strategy", strategy, "--no-sheet")
    assert len(queue) == 4 and set(queue["strategy"]) == {strategy}
    assert np.all(np.diff(queue["score"].to_numpy()) <= 0)


def test_a_run_made_with_other_options_is_not_reused(cli, refined):
    dataset, root = refined
    result = cli("refine", dataset.path, "--budget", "2", "--out", root / "x.csv", "--run", root / "run",
                 *FAST, "--mix-ratio", "0.5", ok=False)
    assert result.exit_code == 2
    assert "--mix-ratio 0.2 -> 0.5" in result.output and "another --run" in result.output


def _answered(queue: pd.DataFrame, dataset: Dataset, path: Path) -> pd.DataFrame:
    """The queue with the expert's answer (the ground truth) in the first four rows, the rest blank."""
    done = queue.copy()
    ids = {image_id: i for i, image_id in enumerate(dataset.image_ids)}
    done["expert"] = ""
    for i in range(4):
        row, cls = ids[done.at[i, "image_id"]], dataset.class_index(done.at[i, "finding"])
        done.at[i, "expert"] = str(int(dataset.ground_truth[row, cls]))
    done.to_csv(path, index=False)
    return done.iloc[:4]


def test_relabels_change_exactly_the_answered_labels(cli, refined):
    dataset, root = refined
    queue, _ = _queue(cli, dataset, root, "q", "--budget", "6")
    answered = _answered(queue, dataset, root / "done.csv")
    cli("ingest", "relabels", dataset.path, root / "done.csv", "--out", root / "fixed")
    fixed = Dataset.open(root / "fixed")
    assert fixed.label_set_names == ["set0", "set1", "set2", "expert"]
    expected = dataset.labels.copy()
    expert = np.full(expected.shape[::2], -1, dtype=np.int8)
    for image_id, finding, answer in zip(answered["image_id"], answered["finding"], answered["expert"]):
        row, cls = int(np.flatnonzero(dataset.image_ids == image_id)[0]), dataset.class_index(finding)
        expected[row, :, cls] = int(answer)
        expert[row, cls] = int(answer)
    np.testing.assert_array_equal(fixed.labels[:, :3], expected)  # the answered entries and no others
    np.testing.assert_array_equal(fixed.labels[:, 3], expert)
    np.testing.assert_array_equal(fixed.ground_truth, dataset.ground_truth)
    np.testing.assert_array_equal(fixed.images, dataset.images)
    # what training fuses: the answers, trusted; every other training label as before
    before, after = training_targets(dataset, "majority"), training_targets(fixed, "majority")
    changed = np.argwhere(before.values != after.values)
    assert {(int(r), int(c)) for r, c in changed} <= {(int(np.flatnonzero(dataset.image_ids == i)[0]),
                                                       dataset.class_index(f))
                                                      for i, f in zip(answered["image_id"], answered["finding"])}
    assert int(after.trusted.sum()) == 4
    # ltv train uses them: a run on the new dataset trains on the four expert label sets
    cli("train", root / "fixed", "--out", root / "trained", "--method", "mv", "--arch", "tiny", "--epochs", "1",
        "--batch-size", "16", "--device", "cpu", "--workers", "0")
    assert (root / "trained" / "best.pt").exists()


def test_answered_entries_leave_the_next_queue(cli, refined):
    dataset, root = refined
    queue, _ = _queue(cli, dataset, root, "q", "--budget", "6")
    answered = _answered(queue, dataset, root / "done2.csv")
    cli("ingest", "relabels", dataset.path, root / "done2.csv", "--out", root / "fixed2")
    cli("refine", root / "fixed2", "--budget", "1000", "--candidates", "all", "--out", root / "next.csv", *FAST)
    following = pd.read_csv(root / "next.csv", keep_default_na=False)
    pairs = set(zip(following["image_id"], following["finding"]))
    assert pairs.isdisjoint(zip(answered["image_id"], answered["finding"]))
    assert len(following) == 36 * 3 - 4


@pytest.mark.parametrize("content, message", [
    ("image_id,finding\nimg0000,class0\n", "missing column(s) expert"),
    ("image_id,finding,expert\nnope,class0,1\n", "line 2: image_id 'nope' is not an image"),
    ("image_id,finding,expert\nimg0000,class0,\nimg0001,class9,1\n", "line 3: finding 'class9' is not a class"),
    ("image_id,finding,expert\nimg0000,class0,maybe\n", "line 2: expert answer 'maybe' is not 1 or 0"),
    ("image_id,finding,expert\nimg0000,class0,1\nimg0000,class0,0\n", "lines 2 and 3 give different answers"),
    ("image_id,finding,expert\nimg0000,class0,\n", "blank in every row"),
    ("", "the answered queue file is empty"),
])
def test_bad_queue_files_get_one_line_errors(cli, tiny_dataset, tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    result = cli("ingest", "relabels", tiny_dataset.path, bad, "--out", tmp_path / "new", ok=False)
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert str(bad) in result.output and message in result.output
    assert not (tmp_path / "new").exists()


def test_relabels_without_out_update_the_dataset_in_place(cli, tiny_dataset, tmp_path):
    result = cli("ingest", "relabels", tiny_dataset.path, tmp_path / "none.csv", ok=False)
    assert result.exit_code == 2 and "none.csv: no such answered queue file" in result.output
    before = tiny_dataset.labels.copy()
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("image_id,finding,expert\nimg0000,class0,1\n")
    second.write_text("image_id,finding,expert\nimg0001,class2,0\nimg0000,class0,0\n")
    cli("ingest", "relabels", tiny_dataset.path, first)
    cli("ingest", "relabels", tiny_dataset.path, second)
    updated = Dataset.open(tiny_dataset.path)
    assert updated.label_set_names == ["set0", "set1", "set2", "expert"]  # one expert set, added to
    expert = updated.labels[:, 3]
    assert expert[0, 0] == 0 and expert[1, 2] == 0 and (expert != -1).sum() == 2  # the later answer wins
    assert (updated.labels[0, :, 0] == 0).all() and (updated.labels[1, :, 2] == 0).all()
    changed = updated.labels[:, :3] != before
    changed[0, :, 0] = changed[1, :, 2] = False
    assert not changed.any()
    assert not list(tiny_dataset.path.parent.glob(f".{tiny_dataset.path.name}.relabels*"))


def test_multiclass_answers_are_class_names(cli, tmp_path):
    dataset = make_dataset(tmp_path / "mc", task="multiclass", n=30, label_sets=2, noise=(0.2, 0.3))
    done = tmp_path / "done.csv"
    done.write_text("image_id,finding,expert\nimg0001,class0,class2\nimg0002,class1,0\nimg0003,class1,\n")
    cli("ingest", "relabels", dataset.path, done, "--out", tmp_path / "mc2")
    fixed = Dataset.open(tmp_path / "mc2")
    assert fixed.labels[1].tolist() == [2, 2, 2] and fixed.labels[2].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(fixed.labels[3:, :2], dataset.labels[3:])
    assert (fixed.labels[:, 2] >= 0).sum() == 2


def test_simulated_loop_reports_rounds_against_random(cli, tmp_path):
    dataset = make_dataset(tmp_path / "sim", n=60, noise=(0.2, 0.25, 0.3), seed=1)
    out = tmp_path / "sim.csv"
    result = cli("refine-sim", dataset.path, "--budget", "5", "--rounds", "2", "--strategies", "entropy,random,none",
                 "--seeds", "0", "--recal-epochs", "1", "--out", out, *FAST)
    assert "Simulated refinement" in result.output
    results = pd.read_csv(out)
    assert len(results) == 3 * 3  # strategies x (round 0 + 2 rounds)
    start = results[results["round"] == 0]
    assert start[["label_accuracy", "test_auc", "test_accuracy"]].nunique().max() == 1  # the shared phase 1
    n_known = 36 * 3
    for strategy, rows in results.groupby("strategy"):
        rows = rows.sort_values("round")
        if strategy == "none":
            assert rows["budget"].max() == 0 and rows["label_accuracy"].nunique() == 1
            continue
        assert rows["budget"].tolist() == [0, 5, 10]
        # the simulated expert is the ground truth: every fixed error raises label accuracy by one entry
        gain = (rows["label_accuracy"] - rows["label_accuracy"].iloc[0]) * n_known
        assert gain.to_numpy() == pytest.approx(rows["corrected"].to_numpy())
    assert all(0.0 <= v <= 1.0 for v in results["test_auc"] if not math.isnan(v))
    summary = pd.read_csv(tmp_path / "sim_summary.csv")
    assert set(summary["strategy"]) == {"entropy", "random", "none"}
    assert (summary.loc[summary["strategy"] == "random", "test_auc_vs_random"] == 0).all()


def test_multiclass_queue_names_classes_and_shows_rgb_thumbnails(cli, tmp_path):
    dataset = make_dataset(tmp_path / "rgb", task="multiclass", n=40, label_sets=3, noise=(0.2, 0.3, 0.3),
                           channels=3)
    out = tmp_path / "q.csv"
    cli("refine", dataset.path, "--budget", "3", "--candidates", "all", "--strategy", "margin", "--out", out, *FAST)
    queue = pd.read_csv(out, keep_default_na=False)
    assert len(queue) == 3
    assert set(queue["finding"]) <= set(dataset.classes) and (queue["label"] == queue["finding"]).all()
    assert set(queue["set:set0"]) <= set(dataset.classes) | {""}
    assert set(queue["model"]) <= set(dataset.classes)
    assert (tmp_path / "q.html").read_text().count("data:image/png;base64,") == 3


def test_run_folder_of_another_tool_is_refused(cli, tiny_dataset, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text('{"classes": []}')
    result = cli("refine", tiny_dataset.path, "--budget", "2", "--out", tmp_path / "q.csv", "--run", tmp_path / "run",
                 *FAST, ok=False)
    assert result.exit_code == 2 and "not an `ltv refine` selection run" in result.output
