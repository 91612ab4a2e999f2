"""Label-only fusion and scoring through the CLI: `ltv export-labels DATASET --aggregator` and `ltv evaluate --fused`.

The datasets are generated long tables (image, labeller, finding, value) ingested with `ingest table --no-images`,
so every test goes the way a user with real readers' labels goes, and the answers are known by construction.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import Cli
from helpers_ingest import error_line, write_csv
from ltvcli.dataset import Dataset

FINDINGS = ["Edema", "Pneumothorax"]
N = 240


def long_table(truth: np.ndarray, flips: dict[str, float], seed: int, *, hedges: dict[str, float] | None = None,
               unread: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per (image, labeller, finding): the truth flipped with each labeller's probability.

    ``hedges`` makes a labeller say "hedge" on a share of its reads, ``unread`` leaves a share of images unread.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for labeller, flip in flips.items():
        said = np.where(rng.random(truth.shape) < flip, 1 - truth, truth).astype(str).astype(object)
        said[rng.random(truth.shape) < (hedges or {}).get(labeller, 0.0)] = "hedge"
        read = rng.random(len(truth)) >= (unread or {}).get(labeller, 0.0)
        rows += [(f"img{i:03d}", labeller, finding, said[i, j])
                 for i in np.flatnonzero(read) for j, finding in enumerate(FINDINGS)]
    return pd.DataFrame(rows, columns=["image", "labeller", "finding", "value"])


def ingest(root: Path, truth: np.ndarray, labels: pd.DataFrame, *extra: str, ground_truth: bool = True) -> Path:
    """A label-only dataset of the long table, split 60/20/20 by image order, with ``truth`` as ground truth."""
    images = [f"img{i:03d}" for i in range(len(truth))]
    split = dict(zip(images, ["train"] * (len(truth) * 6 // 10) + ["validate"] * (len(truth) // 5)
                     + ["test"] * len(truth)))
    labels = labels.assign(split=labels["image"].map(split))
    args = ["ingest", "table", write_csv(root / "labels.csv", labels), "--no-images", "--out", root / "ds", *extra]
    if ground_truth:
        frame = pd.DataFrame(truth, columns=FINDINGS).astype(str)
        frame.insert(0, "image", images)
        args += ["--ground-truth", write_csv(root / "truth.csv", frame)]
    Cli()(*args)
    return root / "ds"


def draw_truth(seed: int = 0, n: int = N) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, len(FINDINGS))) < 0.35).astype(np.int64)


@pytest.fixture(scope="module")
def adversarial(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Two good readers (10 % flips) and one adversary who says the opposite of the truth every time."""
    truth = draw_truth()
    labels = long_table(truth, {"good1": 0.1, "good2": 0.1, "adversary": 1.0}, seed=1)
    return ingest(tmp_path_factory.mktemp("adversarial"), truth, labels), truth


def read_export(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def wide(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A long export's ``column`` as [images, findings] in image-id and FINDINGS order."""
    return frame.pivot(index="image_id", columns="finding", values=column)[FINDINGS].sort_index().to_numpy()


def accuracy(labels: np.ndarray, truth: np.ndarray) -> float:
    return float((labels == truth).mean())


# ----------------------------------------------------------------------------- export-labels DATASET --aggregator
def test_dawid_skene_beats_the_majority_when_one_labeller_is_adversarial(cli, tmp_path, adversarial):
    dataset, truth = adversarial
    fused = {}
    for aggregator in ("majority", "soft_mean", "dawid_skene", "reliability", "crossfit"):
        out = tmp_path / f"{aggregator}.csv"
        cli("export-labels", dataset, "--aggregator", aggregator, "--out", out)
        fused[aggregator] = read_export(out)
    mv, ds = (wide(fused[a], "binarised") for a in ("majority", "dawid_skene"))
    # the majority is right only where both good readers are (about 0.81); Dawid-Skene learns that the
    # adversary's label is the truth flipped, which makes it a perfect voter
    assert accuracy(mv, truth) < 0.88 and accuracy(ds, truth) > 0.97
    # the reliability vote without images is Dawid-Skene's posterior, binarised by sigmoid(k (ȳ − T))
    np.testing.assert_allclose(wide(fused["reliability"], "refined"), wide(fused["dawid_skene"], "refined"),
                               atol=1e-4)
    assert accuracy(wide(fused["reliability"], "binarised") >= 0.5, truth) == accuracy(ds, truth)
    weights = fused["reliability"][["weight_good1", "weight_good2", "weight_adversary"]].mean()
    assert weights["weight_adversary"] < 0.05 and weights["weight_good1"] > 0.4 and weights["weight_good2"] > 0.4
    # the cross-fitted vote without images: the Dawid-Skene posterior it starts training from
    pd.testing.assert_frame_equal(fused["crossfit"], fused["dawid_skene"])
    # soft mean: the vote share of the three; at 0.5 it is the majority
    np.testing.assert_array_equal(wide(fused["soft_mean"], "binarised"), mv)
    assert set(np.unique(wide(fused["soft_mean"], "refined")).round(3)) <= {0.0, 0.333, 0.667, 1.0}


def test_the_export_table_is_a_run_exports_layout(cli, tmp_path, adversarial):
    dataset, _ = adversarial
    ds = Dataset.open(dataset)
    out = tmp_path / "mv.parquet"
    cli("export-labels", dataset, "--aggregator", "majority", "--split", "test", "--out", out)
    frame = read_export(out)
    assert list(frame.columns) == ["image_id", "finding", "refined", "binarised", "weight_good1", "weight_good2",
                                   "weight_adversary"]
    test = ds.image_ids[ds.indices("test")]
    assert len(frame) == len(test) * len(FINDINGS)
    assert frame["image_id"].tolist() == np.repeat(test, len(FINDINGS)).tolist()
    assert frame["finding"].tolist() == FINDINGS * len(test)
    assert set(frame["binarised"].unique()) <= {0.0, 1.0}
    assert frame.filter(like="weight_").isna().all().all()  # the majority has no vote weights, as an mv run's export
    again = cli("export-labels", dataset, "--aggregator", "majority", "--out", out, ok=False)
    assert "--force" in error_line(again)  # an earlier export is replaced only with --force
    cli("export-labels", dataset, "--aggregator", "majority", "--out", out, "--force")
    assert len(read_export(out)) == len(ds) * len(FINDINGS)  # default: every split


def test_unlabelled_entries_are_nan_and_policies_choose_the_fused_sets(cli, tmp_path):
    truth = draw_truth(seed=3, n=60)
    labels = long_table(truth, {"a": 0.1, "b": 0.1, "c": 0.2}, seed=4, hedges={"a": 0.2}, unread={"c": 0.3})
    labels = labels[~((labels.image == "img000") & (labels.finding == "Edema"))]  # nobody labels img000's Edema
    dataset = ingest(tmp_path, truth, labels)
    assert Dataset.open(dataset).label_set_names == ["a_u0", "a_u1", "b", "c"]
    both, u1 = tmp_path / "both.csv", tmp_path / "u1.csv"
    cli("export-labels", dataset, "--aggregator", "majority", "--out", both)
    cli("export-labels", dataset, "--aggregator", "dawid_skene", "--policy", "u1", "--out", u1)
    assert [c for c in read_export(both).columns if c.startswith("weight_")] == \
        ["weight_a_u0", "weight_a_u1", "weight_b", "weight_c"]
    fused = read_export(u1)
    assert [c for c in fused.columns if c.startswith("weight_")] == ["weight_a_u1", "weight_b", "weight_c"]
    blank = fused[(fused.image_id == "img000") & (fused.finding == "Edema")]
    assert blank[["refined", "binarised"]].isna().all().all()
    assert fused.drop(blank.index)[["refined", "binarised"]].notna().all().all()
    chosen = tmp_path / "chosen.csv"
    cli("export-labels", dataset, "--aggregator", "majority", "--label-sets", "a_*,c", "--out", chosen)
    assert [c for c in read_export(chosen).columns if c.startswith("weight_")] == ["weight_a_u0", "weight_a_u1",
                                                                                   "weight_c"]


def test_the_label_only_majority_is_the_majority_an_mv_run_trains_on(cli, tmp_path, mv_run):
    """Same table, same numbers: the run's export (a model beside it) and the dataset's (labels alone)."""
    run, with_images, label_only = mv_run
    cli("export-labels", run, with_images, "--split", "all", "--out", tmp_path / "run.csv", "--device", "cpu")
    cli("export-labels", label_only, "--aggregator", "majority", "--out", tmp_path / "labels.csv")
    by_run, by_labels = read_export(tmp_path / "run.csv"), read_export(tmp_path / "labels.csv")
    assert list(by_run.columns) == list(by_labels.columns)
    pd.testing.assert_frame_equal(by_run, by_labels)


@pytest.fixture(scope="module")
def mv_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """An mv run on a table with images, that dataset, and the same table ingested label-only (ties included)."""
    from helpers_ingest import pattern, write_raster
    from helpers_train import TRAIN_FAST

    root = tmp_path_factory.mktemp("mv")
    n = 20
    for i in range(n):
        write_raster(root / "images" / f"img{i}.png", pattern(i))
    frame = pd.DataFrame({"image": [f"img{i}.png" for i in range(n)], "r1:Edema": [str(i % 2) for i in range(n)],
                          "r2:Edema": [str((i // 2) % 2) for i in range(n)],
                          "split": ["train"] * 12 + ["validate"] * 4 + ["test"] * 4})
    table = write_csv(root / "labels.csv", frame)
    cli = Cli()
    cli("ingest", "table", table, "--images", root / "images", "--out", root / "ds", "--size", "16", "--workers", "0")
    cli("ingest", "table", table, "--no-images", "--out", root / "lo")
    cli("train", root / "ds", "--out", root / "run", "--method", "mv", "--epochs", "1", *TRAIN_FAST)
    return root / "run", root / "ds", root / "lo"


@pytest.mark.parametrize("args, expected", [
    (["--aggregator", "paper"], "--aggregator paper: the paper's vote has no label-only part"),
    (["--aggregator", "ltv"], "--aggregator ltv: the paper's vote has no label-only part"),
    (["--aggregator", "median"], "--aggregator 'median': expected one of majority, soft_mean, dawid_skene, "
                                 "reliability"),
    (["--aggregator", "majority", "--label-sets", "r*"], "--label-sets 'r*' matches no label set; the dataset has "
                                                        "good1, good2, adversary"),
    (["--aggregator", "reliability", "--label-sets", "good1"], "--aggregator reliability votes over at least 2 "
                                                               "label sets"),
    (["--aggregator", "majority", "--policy", "u1"], None),  # no labeller hedged: one set each, nothing to choose
    (["--aggregator", "majority", "--split", "dev"], "--split 'dev': expected one of train, validate, test"),
    (["--aggregator", "reliability", "--threshold", "1"], "--threshold 1.0: expected a number strictly between 0 "
                                                          "and 1"),
    (["--aggregator", "majority", "--out", "x.txt"], "unknown table format '.txt'"),
])
def test_bad_label_only_exports_are_one_line(cli, tmp_path, adversarial, args, expected):
    dataset, _ = adversarial
    command = ["export-labels", dataset, "--out", tmp_path / "out.csv", *args]
    if expected is None:
        cli(*command)
        return
    result = cli(*command, ok=False)
    assert result.exit_code == 2 and expected in error_line(result)
    assert not (tmp_path / "out.csv").exists()


def test_a_run_and_aggregator_are_two_ways_and_options_of_the_other_are_ignored_aloud(cli, tmp_path, adversarial,
                                                                                        mv_run):
    dataset, _ = adversarial
    run, with_images, _ = mv_run
    out = tmp_path / "out.csv"
    line = error_line(cli("export-labels", run, with_images, "--aggregator", "majority", "--out", out, ok=False))
    assert "--aggregator fuses a dataset's label sets without a run: give the dataset alone" in line
    line = error_line(cli("export-labels", dataset, "--out", out, ok=False))
    assert "takes a run folder and a dataset (RUN DATASET), or a dataset alone with --aggregator" in line
    assert not out.exists()
    result = cli("export-labels", dataset, "--aggregator", "majority", "--k", "3", "--device", "cpu", "--out", out)
    assert "warning: --k applies to --aggregator reliability only; ignored" in result.output
    assert "warning: --device applies to a run's export only (RUN DATASET); ignored" in result.output
    result = cli("export-labels", run, with_images, "--policy", "u1", "--out", out, "--force", "--device", "cpu")
    assert "warning: --policy applies to --aggregator only" in result.output


# ----------------------------------------------------------------------------- evaluate --fused
def binary_scores(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "binary.csv", keep_default_na=True)


def documented_share_interval(y: np.ndarray, hits: np.ndarray, subset: np.ndarray, n_boot: int, seed: int,
                              finding: str) -> tuple[float, float]:
    """The documented bootstrap written out: resample negatives then positives; the share of hits in the subset."""
    rng = np.random.default_rng([seed, zlib.crc32(finding.encode())])
    strata = [np.flatnonzero(y == 0), np.flatnonzero(y == 1)]
    shares = []
    for _ in range(n_boot):
        counts = np.zeros(len(y))
        for members in strata:
            np.add.at(counts, members[rng.integers(0, len(members), len(members))], 1)
        shares.append((counts * hits * subset).sum() / (counts * subset).sum())
    return tuple(np.percentile(shares, [2.5, 97.5]))


def test_evaluate_scores_label_sets_and_fused_labels_as_decisions(cli, tmp_path, adversarial):
    dataset, truth = adversarial
    ds = Dataset.open(dataset)
    for aggregator in ("majority", "dawid_skene"):
        cli("export-labels", dataset, "--aggregator", aggregator, "--out", tmp_path / f"{aggregator}.csv")
    out = tmp_path / "ev"
    result = cli("evaluate", "--dataset", dataset, "--fused", f"mv={tmp_path / 'majority.csv'}",
                 "--fused", f"ds={tmp_path / 'dawid_skene.csv'}", "--bootstrap", "200", "--out", out)
    scores = binary_scores(out)
    assert scores.model.unique().tolist() == ["good1", "good2", "adversary", "mv", "ds"]
    assert scores.kind.unique().tolist() == ["labeller", "fused"]
    test = ds.indices("test")
    y = truth[test]
    fused = read_export(tmp_path / "dawid_skene.csv")
    said = {"adversary": ds.labels[test, 2].astype(float),
            "ds": wide(fused[fused.image_id.isin(ds.image_ids[test])], "binarised")}
    for name, labels in said.items():
        for j, finding in enumerate(FINDINGS):
            row = scores[(scores.model == name) & (scores.finding == finding)].iloc[0]
            yj, sj = y[:, j], labels[:, j]
            tp, tn = int(((sj == 1) & (yj == 1)).sum()), int(((sj == 0) & (yj == 0)).sum())
            assert (row.tp, row.tn, row.n) == (tp, tn, len(yj))
            assert row.fn == int((yj == 1).sum()) - tp and row.fp == int((yj == 0).sum()) - tn
            assert row.accuracy == pytest.approx((tp + tn) / len(yj))
            assert row.sensitivity == pytest.approx(tp / (yj == 1).sum())
            assert row.specificity == pytest.approx(tn / (yj == 0).sum())
            if name == "ds":
                lo, hi = documented_share_interval(yj, (sj == yj).astype(float), (yj == 1).astype(float), 200, 0,
                                                   finding)
                assert (row.sensitivity_lo, row.sensitivity_hi) == pytest.approx((lo, hi))
    adversary = scores[scores.model == "adversary"]
    assert (adversary.accuracy == 0).all()
    assert (scores[scores.model == "ds"].accuracy.to_numpy() > scores[scores.model == "mv"].accuracy.to_numpy()).all()
    # the refined column is scored like a model's probabilities, and the two fused files are compared
    auc = pd.read_csv(out / "auc.csv")
    assert set(auc[auc.kind == "fused"].model) == {"mv", "ds"}
    comparison = pd.read_csv(out / "comparison.csv")
    assert comparison[["a", "b"]].iloc[0].tolist() == ["mv", "ds"]
    report = json.loads((out / "evaluation.json").read_text())
    assert [c["kind"] for c in report["columns"]] == ["labeller"] * 3 + ["fused"] * 2
    assert len(report["binary"]) == len(scores)
    table = (out / "table.md").read_text()
    assert "Labels against the ground truth: accuracy, sensitivity and specificity" in table
    assert "| ds | 48 |" in table
    assert "Fused labels: mv, ds." in table
    assert "accuracy, sensitivity, specificity" in " ".join(result.output.split())  # the title wraps to its table


def test_the_terminal_tables_fit_80_columns_and_many_label_sets_are_summarised(cli, tmp_path):
    truth = draw_truth(seed=5, n=80)
    readers = {f"radiologist{k:02d}": 0.05 + 0.02 * k for k in range(10)}
    labels = long_table(truth, readers, seed=6, unread={name: 0.4 for name in readers})  # each image read by some
    dataset = ingest(tmp_path, truth, labels)
    cli("export-labels", dataset, "--aggregator", "dawid_skene", "--out", tmp_path / "ds.csv")
    result = cli("evaluate", "--dataset", dataset, "--split", "all", "--fused", tmp_path / "ds.csv",
                 "--bootstrap", "50", "--out", tmp_path / "ev")
    lines = [line for line in result.output.splitlines() if not line.startswith("wrote ")]  # that one has a path
    assert max(map(len, lines)) <= 80, max(lines, key=len)
    assert "min of 10 label sets" in result.output and "median" in result.output
    # a sparse reader's note is the same on both findings: one line names both, not one line per finding
    notes = " ".join(result.output.split()).split("note: ")[1:]
    assert notes and all(note.startswith("Edema, Pneumothorax: ") for note in notes)
    assert sum(note.count("radiologist") for note in notes) == len(readers)
    assert len(binary_scores(tmp_path / "ev")) == 11 * len(FINDINGS)  # every label set is in the file
    row = [line for line in lines if line.startswith("│ ds ")][0]
    assert row.split("│")[2].strip() == "80"  # all images: the fused labels cover every split


def test_evaluate_split_all_scores_every_split(cli, tmp_path, adversarial):
    dataset, truth = adversarial
    cli("evaluate", "--dataset", dataset, "--split", "all", "--bootstrap", "0", "--out", tmp_path / "ev")
    scores = binary_scores(tmp_path / "ev")
    assert (scores.n == len(truth)).all()
    assert json.loads((tmp_path / "ev" / "evaluation.json").read_text())["settings"]["n_images"] == len(truth)


def test_label_sets_and_policy_choose_the_scored_columns(cli, tmp_path):
    truth = draw_truth(seed=7, n=60)
    dataset = ingest(tmp_path, truth, long_table(truth, {"a": 0.1, "b": 0.2}, seed=8, hedges={"a": 0.3}))
    cli("evaluate", "--dataset", dataset, "--policy", "u0", "--bootstrap", "0", "--out", tmp_path / "ev")
    assert binary_scores(tmp_path / "ev").model.unique().tolist() == ["a_u0", "b"]
    cli("evaluate", "--dataset", dataset, "--label-sets", "a_u1", "--bootstrap", "0", "--out", tmp_path / "ev",
        "--force")
    assert binary_scores(tmp_path / "ev").model.unique().tolist() == ["a_u1"]
    cli("evaluate", "--dataset", dataset, "--policy", "U-Ones", "--bootstrap", "0", "--out", tmp_path / "ev",
        "--force")  # the CheXpert paper's name of u1
    assert binary_scores(tmp_path / "ev").model.unique().tolist() == ["a_u1", "b"]


def export_of(cli: Cli, dataset: Path, out: Path, *args: str) -> Path:
    cli("export-labels", dataset, "--aggregator", "majority", "--out", out, *args)
    return out


def edited(path: Path, edit) -> Path:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    target = path.with_name("edited.csv")
    edit(frame).to_csv(target, index=False)
    return target


@pytest.mark.parametrize("case", ["no ground truth", "another dataset", "a finding missing", "the split missing",
                                  "unknown finding", "value outside [0, 1]", "a missing column", "a row missing"])
def test_bad_fused_labels_are_one_line(cli, tmp_path, adversarial, case):
    dataset, truth = adversarial
    fused = export_of(cli, dataset, tmp_path / "mv.csv")
    other = ingest(tmp_path / "other", draw_truth(9, 30), long_table(draw_truth(9, 30), {"x": 0.1, "y": 0.1}, 9),
                   ground_truth=case != "no ground truth")
    target, expected = dataset, ""
    if case == "no ground truth":
        target, fused = other, export_of(cli, other, tmp_path / "other.csv")
        expected = f"{other}: the dataset has no ground truth; pass --labels with a hand-labelled file"
    elif case == "another dataset":
        fused = edited(export_of(cli, other, tmp_path / "other.csv"), lambda f: f.assign(image_id="x" + f.image_id))
        expected = "edited.csv: 30 of its 30 images are not in the dataset"
    elif case == "a finding missing":
        fused = edited(fused, lambda f: f[f.finding != "Pneumothorax"])
        expected = "edited.csv: no rows for finding 'Pneumothorax'; expected every class the ground truth labels"
    elif case == "the split missing":
        fused = export_of(cli, dataset, tmp_path / "train.csv", "--split", "train")
        expected = "train.csv: no rows for 48 of the 48 evaluated images (first: 'img192'); export the split(s)"
    elif case == "unknown finding":
        fused = edited(fused, lambda f: f.assign(finding=f.finding.replace("Edema", "Oedema")))
        expected = "edited.csv, line 2, column 'finding': 'Oedema' is not a class of the dataset"
    elif case == "value outside [0, 1]":
        fused = edited(fused, lambda f: f.assign(refined=f.refined.where(f.index != 3, "1.5")))
        expected = "edited.csv, line 5, column 'refined': value '1.5' is not a number in [0, 1] or blank"
    elif case == "a missing column":
        fused = edited(fused, lambda f: f.drop(columns="binarised"))
        expected = "edited.csv: missing required column(s) 'binarised'"
    elif case == "a row missing":
        fused = edited(fused, lambda f: f[~((f.image_id == "img200") & (f.finding == "Edema"))])
        expected = "edited.csv: no row for image 'img200' and finding 'Edema'"
    result = cli("evaluate", "--dataset", target, "--fused", fused, "--out", tmp_path / "ev", ok=False)
    assert result.exit_code == 2
    assert expected in error_line(result)
    assert not (tmp_path / "ev").exists()


def test_fused_labels_are_scored_without_a_dataset_against_a_labels_file(cli, tmp_path, adversarial):
    dataset, truth = adversarial
    fused = export_of(cli, dataset, tmp_path / "mv.csv")
    ds = Dataset.open(dataset)
    hand = pd.DataFrame(truth[:50], columns=FINDINGS).astype(str)
    hand.insert(0, "image", ds.image_ids[:50])
    labels = write_csv(tmp_path / "hand.csv", hand)
    cli("evaluate", "--fused", fused, "--labels", labels, "--bootstrap", "0", "--out", tmp_path / "ev")
    scores = binary_scores(tmp_path / "ev")
    assert scores.model.unique().tolist() == ["mv"] and (scores.n == 50).all()


# ----------------------------------------------------------------------------- the NIH four-findings layout
def test_google_radiologists_fused_and_scored_label_only(cli, tmp_path):
    """Google's four-findings files as distributed (generated): ingest nih --no-images, fuse, score.

    By hand (tests/helpers_ingest.NIH_READS): with hedges as present (u1) the majority calls nodule/mass on
    00000003_000 (reader 111 hedged, 444 said yes; the reference says no), and is right everywhere else; with
    hedges as absent (u0) it is right on all four images. Reader 333 read 00000006_000 twice and disagreed with
    itself on opacity, so that read is missing and 333 is scored on two images for opacity.
    """
    from helpers_ingest import write_nih

    files = write_nih(tmp_path / "nih")
    dataset = tmp_path / "ds"
    cli("ingest", "nih", "--no-images", "--out", dataset, "--readers", files.readers,
        "--ground-truth", files.test_labels, "--ground-truth", files.validation_labels)
    for policy in ("u0", "u1"):
        cli("export-labels", dataset, "--aggregator", "majority", "--label-sets", "reader*", "--policy", policy,
            "--out", tmp_path / f"mv_{policy}.csv")
    cli("evaluate", "--dataset", dataset, "--split", "all", "--label-sets", "reader*", "--policy", "u1",
        "--fused", f"mv_u1={tmp_path / 'mv_u1.csv'}", "--fused", f"mv_u0={tmp_path / 'mv_u0.csv'}",
        "--bootstrap", "0", "--out", tmp_path / "ev")
    scores = binary_scores(tmp_path / "ev").set_index(["model", "finding"])
    assert scores.index.get_level_values("model").unique().tolist() == [
        "reader111_u1", "reader222_u1", "reader444", "reader333", "mv_u1", "mv_u0"]  # readers in the file's order
    lesion = scores.loc[("mv_u1", "Lung Lesion")]
    assert (lesion.n, lesion.tp, lesion.fn, lesion.tn, lesion.fp) == (4, 1, 0, 2, 1)
    assert (lesion.accuracy, lesion.sensitivity, lesion.specificity) == (0.75, 1.0, pytest.approx(2 / 3))
    assert (scores.loc["mv_u0"].accuracy == 1.0).all()
    assert (scores.loc["mv_u1"].drop("Lung Lesion").accuracy == 1.0).all()
    opacity = scores.loc[("reader333", "Lung Opacity")]
    assert (opacity.n, opacity.tp, opacity.fn, opacity.tn, opacity.fp) == (2, 1, 1, 0, 0)
    assert np.isnan(opacity.specificity) and "specificity not computable" in opacity.note
