"""``ltv evaluate`` through the CLI: numbers against scikit-learn and direct re-computation, files, errors."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score, roc_auc_score

from conftest import make_dataset
from ltvcli.dataset import Dataset, DatasetSpec, LabelSet, build_dataset

# The labels file uses an alias (E-cardio, Effusion) where the predictions use canonical names.
FINDINGS = ["Atelectasis", "Enlarged Cardiomediastinum", "Edema", "Pleural Effusion"]
LABEL_HEADERS = ["Atelectasis", "E-cardio", "Edema", "Effusion"]


def write_table(path: Path, ids, columns: list[str], values: np.ndarray, id_column: str = "image") -> Path:
    """A predictions CSV: an id column and one probability column per class (NaN written blank)."""
    frame = pd.DataFrame(values, columns=columns)
    frame.insert(0, id_column, list(ids))
    frame.to_csv(path, index=False)
    return path


def write_labels(path: Path, ids, truth: np.ndarray, headers=LABEL_HEADERS, id_column: str = "image") -> Path:
    """Hand labels: 1 / 0, blank where ``truth`` is NaN."""
    frame = pd.DataFrame(truth, columns=headers).map(lambda v: "" if np.isnan(v) else str(int(v)))
    frame.insert(0, id_column, list(ids))
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def hand(tmp_path: Path):
    """120 hand-labelled images (some cells blank), a good model, a random one and an exact copy of the good one."""
    rng = np.random.default_rng(0)
    n = 120
    ids = [f"dicom{i:03d}" for i in range(n)]
    truth = (rng.random((n, len(FINDINGS))) < 0.35).astype(float)
    truth[rng.random(truth.shape) < 0.1] = np.nan
    good = np.clip(0.35 * np.nan_to_num(truth) + 0.65 * rng.random(truth.shape), 0, 1)
    paths = {
        "labels": write_labels(tmp_path / "hand.csv", ids, truth),
        "good": write_table(tmp_path / "good.csv", ids, FINDINGS, good),
        "copy": write_table(tmp_path / "copy.csv", ids, FINDINGS, good),
        "random": write_table(tmp_path / "random.csv", ids, FINDINGS, rng.random(truth.shape)),
    }
    return paths, ids, truth, good


def direct_bootstrap(y: np.ndarray, s: np.ndarray, n_boot: int, seed: int, finding: str) -> np.ndarray:
    """The documented stratified bootstrap, written out: per resample, negatives then positives with replacement."""
    rng = np.random.default_rng([seed, zlib.crc32(finding.encode())])
    strata = [np.flatnonzero(y == 0), np.flatnonzero(y == 1)]
    aucs = []
    for _ in range(n_boot):
        drawn = np.concatenate([members[rng.integers(0, len(members), len(members))] for members in strata])
        aucs.append(roc_auc_score(y[drawn], s[drawn]))
    return np.array(aucs)


def read_auc(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "auc.csv", keep_default_na=True).set_index(["model", "finding"])


# ----------------------------------------------------------------------------- AUC and intervals
def test_auc_equals_sklearn_and_interval_equals_direct_bootstrap(cli, hand, tmp_path):
    paths, _, truth, good = hand
    out = tmp_path / "out"
    cli("evaluate", "--predictions", paths["good"], "--labels", paths["labels"], "--bootstrap", 200, "--seed", 7,
        "--out", out)
    auc = read_auc(out)
    replicates = []
    for j, finding in enumerate(FINDINGS):
        labelled = ~np.isnan(truth[:, j])
        y, s = truth[labelled, j].astype(int), good[labelled, j]
        row = auc.loc[("good", finding)]
        assert row.auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        boot = direct_bootstrap(y, s, 200, 7, finding)
        assert (row.lo, row.hi) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])), abs=1e-12)
        assert (row.n_pos, row.n_neg) == (y.sum(), (y == 0).sum())
        replicates.append(boot)
    average = auc.loc[("good", "Average")]
    assert average.auc == pytest.approx(auc.loc["good"].auc.drop("Average").mean(), abs=1e-12)
    assert (average.lo, average.hi) == pytest.approx(
        tuple(np.percentile(np.mean(replicates, axis=0), [2.5, 97.5])), abs=1e-12)


def test_same_seed_same_intervals_other_seed_other_intervals(cli, hand, tmp_path):
    paths, *_ = hand
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        cli("evaluate", "-p", paths["good"], "--labels", paths["labels"], "--bootstrap", 100, "--seed", seed,
            "--out", tmp_path / name)
        runs[name] = read_auc(tmp_path / name)
    pd.testing.assert_frame_equal(runs["a"], runs["b"])
    assert not np.allclose(runs["a"].lo, runs["c"].lo)
    np.testing.assert_allclose(runs["a"].auc, runs["c"].auc)


# ----------------------------------------------------------------------------- comparisons
def test_identical_models_differ_by_zero_with_p_one(cli, hand, tmp_path):
    paths, *_ = hand
    cli("evaluate", "-p", paths["good"], "-p", paths["copy"], "--labels", paths["labels"], "--bootstrap", 100,
        "--out", tmp_path / "out")
    comparison = pd.read_csv(tmp_path / "out" / "comparison.csv").set_index("row")
    assert list(comparison.index) == [*FINDINGS, "Average"]
    assert (comparison.a == "good").all() and (comparison.b == "copy").all()
    assert (comparison.difference == 0).all() and (comparison.lo == 0).all() and (comparison.hi == 0).all()
    assert (comparison.p_value == 1.0).all() and (comparison.test == "DeLong").all()


def test_clearly_better_model_has_p_below_005_and_interval_above_zero(cli, hand, tmp_path):
    paths, _, truth, good = hand
    result = cli("evaluate", "-p", f"ours={paths['good']}", "-p", paths["random"], "--labels", paths["labels"],
                 "--bootstrap", 200, "--out", tmp_path / "out")
    comparison = pd.read_csv(tmp_path / "out" / "comparison.csv").set_index("row")
    average = comparison.loc["Average"]
    assert (average.a, average.b) == ("ours", "random")
    assert average.p_value < 0.05 and average.lo > 0
    assert average.difference == pytest.approx(average.value_a - average.value_b)
    assert (comparison.drop("Average").p_value < 0.05).sum() >= 3
    assert "ours vs random" in result.output


def test_compare_names_any_two_columns_including_a_label_set(cli, tmp_path):
    ds = make_dataset(tmp_path / "ds", n=100, noise=(0.0, 0.3, 0.1))
    cli("evaluate", "--dataset", ds.path, "--compare", "set1", "set2", "--bootstrap", 50, "--out", tmp_path / "out")
    comparison = pd.read_csv(tmp_path / "out" / "comparison.csv").set_index("row")
    auc = read_auc(tmp_path / "out")
    assert comparison.loc["class0"].value_a == pytest.approx(auc.loc[("set1", "class0")].auc)
    assert comparison.loc["Average"].difference < 0  # set1 flips 30 % of labels, set2 10 %
    bad = cli("evaluate", "--dataset", ds.path, "--compare", "set1", "nosuch", ok=False)
    assert bad.exit_code == 2 and "no column named 'nosuch'" in bad.output


# ----------------------------------------------------------------------------- label sets and the dataset
def finding_dataset(out: Path, n: int = 60, seed: int = 1) -> Dataset:
    """Two images per study, four findings, a label set with missing entries, ground truth on every image."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n // 2, len(FINDINGS))) < 0.4).astype(np.int8).repeat(2, axis=0)
    noisy = np.where(rng.random(truth.shape) < 0.2, 1 - truth, truth).astype(np.int8)
    partial = truth.copy()
    partial[rng.random(truth.shape) < 0.3] = -1
    manifest = pd.DataFrame({"image_id": [f"im{i:03d}" for i in range(n)],
                             "study_id": [f"s{i // 2:03d}" for i in range(n)],
                             "split": "test", "view": "PA", "source": ""})
    spec = DatasetSpec(task="multilabel", classes=FINDINGS, manifest=manifest,
                       label_sets=[LabelSet("noisy", "noisy"), LabelSet("partial", "partial")],
                       labels=np.stack([noisy, partial], axis=1), ground_truth=truth,
                       pixels=rng.integers(0, 255, (n, 8, 8), dtype=np.uint8), source={"name": "generated"})
    return build_dataset(spec, out, size=8, channels=1)


def test_label_sets_are_scored_with_missing_entries_left_out(cli, tmp_path):
    ds = finding_dataset(tmp_path / "ds")
    cli("evaluate", "--dataset", ds.path, "--compare", "noisy", "partial", "--bootstrap", 50, "--out",
        tmp_path / "out")
    auc = read_auc(tmp_path / "out")
    comparison = pd.read_csv(tmp_path / "out" / "comparison.csv").set_index("row")
    truth, labels = ds.ground_truth, ds.labels
    for j, finding in enumerate(FINDINGS):
        assert auc.loc[("noisy", finding)].auc == pytest.approx(roc_auc_score(truth[:, j], labels[:, 0, j]))
        known = labels[:, 1, j] != -1
        row = auc.loc[("partial", finding)]
        assert row.auc == pytest.approx(1.0)  # the partial set is right wherever it labels
        assert row.n_pos + row.n_neg == known.sum() and f"{(~known).sum()} labelled images" in row.note
        # compared on the images both label: the noisy set's AUC there, not on all images
        paired = comparison.loc[finding]
        assert paired.value_a == pytest.approx(roc_auc_score(truth[known, j], labels[known, 0, j]))
        assert paired.difference == pytest.approx(paired.value_a - 1.0)


@pytest.mark.parametrize("task", ["multilabel", "multiclass"])
def test_a_label_set_without_labels_on_the_split_is_reported_not_crashed_on(cli, tmp_path, task):
    """Crowd annotators often label the training images only: their column is empty on test, the others count."""
    ds = make_dataset(tmp_path / "ds", task=task, n=40)
    labels = np.load(ds.path / "labels.npy")
    labels[ds.indices("test"), 1] = -1  # set1 labelled no test image
    np.save(ds.path / "labels.npy", labels)
    result = cli("evaluate", "-d", ds.path, "--bootstrap", 20, "--compare", "set0", "set1", "--out", tmp_path / "out")
    assert "label set 'set1': no labels on this split" in result.output
    scores = pd.read_csv(tmp_path / "out" / ("auc.csv" if task == "multilabel" else "accuracy.csv"))
    empty, scored = scores[scores.model == "set1"], scores[scores.model == "set0"]
    value = "auc" if task == "multilabel" else "value"
    assert empty[value].isna().all() and empty.note.str.contains("no labels on this split").any()
    assert scored[value].notna().any()
    comparison = pd.read_csv(tmp_path / "out" / "comparison.csv")
    assert comparison.difference.isna().all() and comparison.note.notna().all()


def test_study_keyed_labels_label_every_image_of_the_study(cli, tmp_path):
    ds = finding_dataset(tmp_path / "ds")
    rng = np.random.default_rng(5)
    studies = [f"s{i:03d}" for i in range(0, 30, 2)]  # every other study
    truth = (rng.random((len(studies), len(FINDINGS))) < 0.5).astype(float)
    labels = write_labels(tmp_path / "hand.csv", studies, truth, id_column="study_id")
    scores = rng.random((len(ds), len(FINDINGS)))
    preds = write_table(tmp_path / "p.csv", ds.image_ids, FINDINGS, scores, id_column="dicom_id")
    cli("evaluate", "--dataset", ds.path, "--labels", labels, "-p", preds, "--bootstrap", 0, "--out",
        tmp_path / "out")
    auc = read_auc(tmp_path / "out")
    rows = np.flatnonzero(np.isin(ds.manifest.study_id, studies))
    per_image = truth[[studies.index(s) for s in ds.manifest.study_id.iloc[rows]]]
    for j, finding in enumerate(FINDINGS):
        row = auc.loc[("p", finding)]
        assert (row.n_pos, row.n_neg) == (2 * truth[:, j].sum(), 2 * (truth[:, j] == 0).sum())
        assert row.auc == pytest.approx(roc_auc_score(per_image[:, j], scores[rows, j]))
        assert np.isnan(row.lo)  # --bootstrap 0: no intervals


def test_single_class_finding_is_not_computable_and_left_out_of_the_average(cli, hand, tmp_path):
    paths, ids, truth, good = hand
    truth = truth.copy()
    truth[:, 2] = np.where(np.isnan(truth[:, 2]), np.nan, 0.0)  # Edema: no positive at all
    labels = write_labels(tmp_path / "one_class.csv", ids, truth)
    result = cli("evaluate", "-p", paths["good"], "--labels", labels, "--bootstrap", 50, "--out", tmp_path / "out")
    auc = read_auc(tmp_path / "out")
    edema = auc.loc[("good", "Edema")]
    assert np.isnan(edema.auc) and edema.n_pos == 0 and "not computable" in edema.note and "no positives" in edema.note
    others = [f for f in FINDINGS if f != "Edema"]
    assert auc.loc[("good", "Average")].auc == pytest.approx(np.mean([auc.loc[("good", f)].auc for f in others]))
    assert "left out: Edema" in auc.loc[("good", "Average")].note
    assert "not computable" in result.output


# ----------------------------------------------------------------------------- ids
def test_unknown_ids_are_an_error_unless_warn_drops_them(cli, hand, tmp_path):
    paths, ids, truth, good = hand
    extra = np.vstack([truth, [[1, 0, 1, 0], [0, 1, 0, 1]]])
    labels = write_labels(tmp_path / "extra.csv", [*ids, "ghost1", "ghost2"], extra)
    bad = cli("evaluate", "-p", paths["good"], "--labels", labels, "--out", tmp_path / "bad", ok=False)
    assert bad.exit_code == 2
    assert "2 of 122 image value(s)" in bad.output and "'ghost1'" in bad.output and "--unknown-ids warn" in bad.output
    assert len(bad.output.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
    ok = cli("evaluate", "-p", paths["good"], "--labels", labels, "--unknown-ids", "warn", "--bootstrap", 0,
             "--out", tmp_path / "ok")
    assert "warning" in ok.output and "2 of 122" in ok.output and "left out" in ok.output
    row = read_auc(tmp_path / "ok").loc[("good", "Atelectasis")]
    assert row.n_pos + row.n_neg == (~np.isnan(truth[:, 0])).sum()


def test_labelled_images_without_predictions_are_an_error(cli, tmp_path):
    ds = make_dataset(tmp_path / "ds", n=60)
    rows = ds.indices("test")
    partial = write_table(tmp_path / "p.csv", ds.image_ids[rows[3:]], ds.classes, np.full((len(rows) - 3, 3), 0.5))
    bad = cli("evaluate", "--dataset", ds.path, "-p", partial, ok=False)
    assert bad.exit_code == 2 and f"no prediction for 3 of the {len(rows)} labelled images" in bad.output
    assert repr(str(ds.image_ids[rows[0]])) in bad.output


# ----------------------------------------------------------------------------- files
def test_files_parse_back_to_the_same_numbers(cli, hand, tmp_path):
    paths, *_ = hand
    out = tmp_path / "out"
    cli("evaluate", "-p", paths["good"], "-p", paths["random"], "--labels", paths["labels"], "--bootstrap", 100,
        "--out", out)
    auc = pd.read_csv(out / "auc.csv")
    assert list(auc.columns) == ["model", "kind", "finding", "auc", "lo", "hi", "n_pos", "n_neg", "note"]
    document = json.loads((out / "evaluation.json").read_text())
    from_json = pd.DataFrame(document["scores"])
    np.testing.assert_allclose(from_json[["auc", "lo", "hi"]].to_numpy(float), auc[["auc", "lo", "hi"]].to_numpy())
    assert document["settings"]["n_boot"] == 100 and document["settings"]["compare"] == ["good", "random"]
    assert [c["name"] for c in document["columns"]] == ["good", "random"]
    comparison = pd.read_csv(out / "comparison.csv")
    np.testing.assert_allclose(pd.DataFrame(document["comparison"]).p_value, comparison.p_value)
    markdown = (out / "table.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == ["AUC", "good", "random"]
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[1:6])}
    assert set(rows) == {"Atelectasis", "E-cardio", "Edema", "Effusion", "**Average**"}
    for finding, short in zip(FINDINGS, ["Atelectasis", "E-cardio", "Edema", "Effusion"]):
        value, interval = rows[short][0].split(" ", 1)
        expected = auc[(auc.model == "good") & (auc.finding == finding)].iloc[0]
        assert float(value) == pytest.approx(expected.auc, abs=5e-4)
        lo, hi = (float(x) for x in interval.strip("[]").split(","))
        assert (lo, hi) == pytest.approx((expected.lo, expected.hi), abs=5e-4)
    for finding in FINDINGS:
        png = out / "roc" / f"roc_{finding.lower().replace(' ', '-')}.png"
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size == (500, 500)
    assert not list(out.rglob("*.tmp"))


# ----------------------------------------------------------------------------- multi-class
def test_multiclass_accuracy_recall_and_confusion_matrix(cli, tmp_path):
    ds = make_dataset(tmp_path / "ds", task="multiclass", n=200, n_classes=3, label_sets=2, noise=(0.2, 0.4))
    rows = ds.indices("test")
    y = ds.ground_truth[rows].astype(int)
    rng = np.random.default_rng(2)
    probs = rng.random((len(rows), 3)) + 0.8 * np.eye(3)[y]
    probs /= probs.sum(axis=1, keepdims=True)
    write_table(tmp_path / "p.csv", ds.image_ids[rows], ds.classes, probs)
    out = tmp_path / "out"
    result = cli("evaluate", "--dataset", ds.path, "-p", tmp_path / "p.csv", "--compare", "p", "set0",
                 "--bootstrap", 100, "--seed", 1, "--out", out)
    scores = pd.read_csv(out / "accuracy.csv", keep_default_na=False)
    predicted = probs.argmax(axis=1)
    accuracy = scores[(scores.model == "p") & (scores.metric == "accuracy")].iloc[0]
    assert float(accuracy.value) == pytest.approx(accuracy_score(y, predicted))
    correct = predicted == y
    direct_rng = np.random.default_rng([1, zlib.crc32(b"accuracy")])
    boot = []
    for _ in range(100):
        drawn = np.concatenate([m[direct_rng.integers(0, len(m), len(m))] for m in (np.flatnonzero(y == k)
                                                                                   for k in range(3))])
        boot.append(correct[drawn].mean())
    assert (float(accuracy.lo), float(accuracy.hi)) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])))
    recalls = scores[(scores.model == "p") & (scores.metric == "recall")]
    np.testing.assert_allclose(recalls.value.astype(float), recall_score(y, predicted, average=None))
    assert list(recalls["class"]) == ds.classes
    matrix = pd.read_csv(out / "confusion_p.csv", index_col=0).to_numpy()
    np.testing.assert_array_equal(matrix, confusion_matrix(y, predicted))
    labeller = scores[(scores.model == "set0") & (scores.metric == "accuracy")].iloc[0]
    assert float(labeller.value) == pytest.approx(np.mean(ds.labels[rows, 0] == y))
    comparison = pd.read_csv(out / "comparison.csv").iloc[0]
    assert comparison.test == "McNemar" and comparison.difference == pytest.approx(
        accuracy_score(y, predicted) - np.mean(ds.labels[rows, 0] == y))
    assert "confusion matrix" in result.output and "Accuracy" in result.output


def test_multiclass_hand_labels_name_each_image_class(cli, tmp_path):
    ds = make_dataset(tmp_path / "ds", task="multiclass", n=60, n_classes=3, label_sets=2, noise=(0.2, 0.4))
    given = np.array([ds.classes[k] for k in ds.labels[:20, 1]], dtype=object)  # set1's labels as the "truth"
    given[3] = ""  # not labelled
    labels = tmp_path / "hand.csv"
    pd.DataFrame({"image": ds.image_ids[:20], "label": given}).to_csv(labels, index=False)
    cli("evaluate", "--dataset", ds.path, "--labels", labels, "--bootstrap", 0, "--out", tmp_path / "out")
    scores = pd.read_csv(tmp_path / "out" / "accuracy.csv")
    accuracy = scores[scores.metric == "accuracy"].set_index("model")
    assert accuracy.value["set1"] == 1.0
    keep = np.arange(20) != 3
    assert accuracy.value["set0"] == pytest.approx(np.mean(ds.labels[:20, 0][keep] == ds.labels[:20, 1][keep]))
    assert accuracy.n["set0"] == 19
    given[5] = "dog"
    pd.DataFrame({"image": ds.image_ids[:20], "label": given}).to_csv(labels, index=False)
    bad = cli("evaluate", "--dataset", ds.path, "--labels", labels, ok=False)
    assert "hand.csv, line 7, column 'label': value 'dog' is not a class name (class0, class1, class2)" in bad.output


# ----------------------------------------------------------------------------- a trained run
def test_a_trained_run_is_evaluated_end_to_end(cli, tmp_path):
    ds = make_dataset(tmp_path / "ds", n=60)
    run = tmp_path / "run"
    cli("train", ds.path, "--out", run, "--arch", "tiny", "--epochs", 1, "--method", "single", "--label-set",
        "set0", "--device", "cpu", "--batch-size", 16)
    cli("predict", run, ds.path, "--out", tmp_path / "pred.csv", "--device", "cpu")
    out = tmp_path / "out"
    cli("evaluate", f"tiny={run}", "--dataset", ds.path, "-p", f"exported={tmp_path / 'pred.csv'}",
        "--device", "cpu", "--bootstrap", 50, "--out", out)
    auc = read_auc(out)
    predictions = pd.read_csv(tmp_path / "pred.csv").set_index("image")
    rows = ds.indices("test")
    for j, cls in enumerate(ds.classes):
        expected = roc_auc_score(ds.ground_truth[rows, j], predictions.loc[ds.image_ids[rows], cls])
        assert auc.loc[("tiny", cls)].auc == pytest.approx(expected, abs=1e-6)
    assert {"set0", "set1", "set2", "tiny", "exported"} == set(auc.index.get_level_values("model"))
    comparison = pd.read_csv(out / "comparison.csv").set_index("row")
    assert comparison.loc["Average"].difference == pytest.approx(0, abs=1e-6)
    assert comparison.loc["Average"].p_value == pytest.approx(1.0, abs=1e-3)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case, expected", [
    ("missing_column", "good.csv: no column 'Edema'"),
    ("not_binary", "hand.csv, line 4, column 'Edema': value '2' is not 0, 1 or blank"),
    ("out_of_range", "good.csv, line 3, column 'Atelectasis': value '1.5' is outside [0, 1]"),
    ("not_a_number", "good.csv, line 3, column 'Atelectasis': value 'high' is not a number"),
    ("no_id_column", "hand.csv: no id column"),
    ("unknown_class", "column 'Fracture' is not"),
])
def test_bad_input_is_one_line_naming_file_and_column(cli, hand, tmp_path, case, expected):
    paths, ids, truth, good = hand
    labels, preds = paths["labels"], paths["good"]
    if case == "missing_column":
        pd.read_csv(preds).drop(columns=["Edema"]).to_csv(preds, index=False)
    elif case == "not_binary":
        frame = pd.read_csv(labels, dtype=str, keep_default_na=False)
        frame.loc[2, "Edema"] = "2"
        frame.to_csv(labels, index=False)
    elif case in ("out_of_range", "not_a_number"):
        frame = pd.read_csv(preds, dtype=str)
        frame.loc[1, "Atelectasis"] = "1.5" if case == "out_of_range" else "high"
        frame.to_csv(preds, index=False)
    elif case == "no_id_column":
        pd.read_csv(labels, dtype=str).rename(columns={"image": "name"}).to_csv(labels, index=False)
    elif case == "unknown_class":
        ds = finding_dataset(tmp_path / "ds")
        frame = pd.read_csv(labels, dtype=str).rename(columns={"Edema": "Fracture"}).iloc[:len(ds)]
        frame["image"] = ds.image_ids
        frame.to_csv(labels, index=False)
        result = cli("evaluate", "--dataset", ds.path, "--labels", labels, "--out", tmp_path / "out", ok=False)
        assert result.exit_code == 2 and expected in result.output
        return
    result = cli("evaluate", "-p", preds, "--labels", labels, "--out", tmp_path / "out", ok=False)
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and expected in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_nothing_to_evaluate_and_run_without_dataset_are_errors(cli, hand, tmp_path):
    paths, *_ = hand
    assert "nothing to evaluate" in cli("evaluate", "--labels", paths["labels"], ok=False).output
    assert "needs --dataset" in cli("evaluate", tmp_path, "--labels", paths["labels"], "-p", paths["good"],
                                    ok=False).output
    assert "--unknown-ids 'maybe'" in cli("evaluate", "-p", paths["good"], "--labels", paths["labels"],
                                          "--unknown-ids", "maybe", ok=False).output


@pytest.mark.parametrize("columns", ["80", "300"])
def test_the_terminal_table_fits_its_width_without_cutting_a_cell(cli, hand, monkeypatch, columns):
    """Nine long-named models: one table with intervals on a wide terminal; at 80 columns, AUCs in tables that fit."""
    paths, *_ = hand
    names = [f"model_number_{k}" for k in range(1, 10)]
    monkeypatch.setenv("COLUMNS", columns)
    out = cli("evaluate", "--labels", paths["labels"], "--bootstrap", "20",
              *[arg for name in names for arg in ("-p", f"{name}={paths['good']}")]).output
    tables = [line for line in out.splitlines() if line[:1] in "┏┃┡│├└"]
    assert max(map(len, tables)) <= int(columns) and "…" not in out
    for name in names:
        assert f" {name} ┃" in out
    wide = columns == "300"
    score_tables = len(re.findall(r"^┃ finding ", out, re.M))
    assert score_tables == 1 if wide else score_tables > 1
    assert ("AUC [95% CI]" in out) == wide and ("AUC (intervals: widen the terminal" in out) == (not wide)
