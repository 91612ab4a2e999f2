"""``ltv label-reports`` through the CLI, on generated reports: negation, uncertainty, scope, synonyms, No Finding."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ltvcli.dataset import Dataset, DatasetSpec, LabelSet, build_dataset
from ltvcli.dataset.format import MISSING, RAW_BLANK, RAW_MISSING, RAW_NEGATIVE, RAW_POSITIVE, RAW_UNCERTAIN
from ltvcli.errors import LtvError
from ltvcli.reports import engine, label

try:
    engine.import_medspacy()
except LtvError:
    if os.environ.get("CI"):  # CI installs the reports extra: these tests must run there, never skip
        raise
    pytest.skip(f"medspaCy is not installed ({engine.INSTALL})", allow_module_level=True)

CLASSES = ["Atelectasis", "Cardiomegaly", "Pleural Effusion", "Pneumonia", "Pneumothorax", "Support Devices",
           "No Finding"]
P, N, U, B, X = RAW_POSITIVE, RAW_NEGATIVE, RAW_UNCERTAIN, RAW_BLANK, RAW_MISSING

# (report, expected raw code per class in CLASSES order); None = the image has no report.
CASES = [
    ("FINDINGS: No pneumothorax.", [B, B, B, B, N, B, P]),
    ("The lungs are clear without effusion.", [B, B, N, B, B, B, P]),
    ("Cannot exclude pneumonia in the left base.", [B, B, B, U, B, B, B]),
    ("Possible small left effusion.", [B, B, U, B, B, B, B]),
    ("No pneumothorax. Small right pleural effusion.", [B, B, P, B, N, B, B]),
    ("IMPRESSION: No pneumothorax\nRight basilar atelectasis", [P, B, B, B, N, B, B]),
    ("The heart is mildly enlarged. Bibasilar atelectatic changes.", [P, P, B, B, B, B, B]),
    ("Enlarged cardiac silhouette. Right chest tube in place.", [B, P, B, B, B, P, B]),
    ("No focal consolidation, pneumothorax or large pleural effusion.", [B, B, N, B, N, B, P]),
    ("Pacemaker leads in the right ventricle. The lungs are clear.", [B, B, B, B, B, P, P]),
    ("The lungs are clear. Heart size is normal. No acute disease.", [B, B, B, B, B, B, P]),
    ("Atelectasis versus pneumonia at the right base; no effusion.", [U, B, N, U, B, B, B]),
    ("Small right pleural effusion, with left basilar atelectasis versus pneumonia.", [U, B, P, U, B, B, B]),
    (None, [X, X, X, X, X, X, X]),
]


def make_reports_dataset(root: Path, cases=CASES, *, classes=CLASSES, files: bool = False,
                         images: bool = True) -> Path:
    """A multi-label dataset whose images carry ``cases``' reports: inline (OpenI) or as files (MIMIC layout)."""
    n = len(cases)
    ids = [f"img{i:03d}" for i in range(n)]
    manifest = pd.DataFrame({"image_id": ids, "study_id": [f"s{i}" for i in range(n)], "split": "train",
                             "source": ""})
    reports = None
    if files:
        folder = root / "reports"
        folder.mkdir(parents=True)
        paths = []
        for i, (text, _) in enumerate(cases):
            if text is None:
                paths.append("")
                continue
            (folder / f"s{i}.txt").write_text(text, encoding="utf-8")
            paths.append(str(folder / f"s{i}.txt"))
        manifest["report"] = paths
    else:
        keep = [i for i, (text, _) in enumerate(cases) if text is not None]
        reports = pd.DataFrame({"image_id": [ids[i] for i in keep], "text": [cases[i][0] for i in keep]})
    truth = (np.random.default_rng(0).random((n, len(classes))) < 0.3).astype(np.int8)
    spec = DatasetSpec(task="multilabel", classes=list(classes), manifest=manifest, label_sets=[],
                       labels=np.zeros((n, 0, len(classes)), dtype=np.int8), ground_truth=truth, reports=reports,
                       pixels=np.zeros((n, 8, 8), dtype=np.uint8) if images else None, has_images=images,
                       source={"name": "test"})
    build_dataset(spec, root / "ds", size=8, channels=1)
    return root / "ds"


def expected() -> np.ndarray:
    return np.array([codes for _, codes in CASES], dtype=np.int8)


def test_negation_uncertainty_scope_synonyms_and_no_finding(tmp_path, cli):
    ds = make_reports_dataset(tmp_path)
    result = cli("label-reports", ds, "--out", tmp_path / "new", "--workers", "0")
    new = Dataset.open(tmp_path / "new")
    assert new.label_set_names == ["medspacy_u0", "medspacy_u1"]
    assert new.labellers == ["medspacy"]
    raw = new.raw_labels[:, 0]
    for i, (text, codes) in enumerate(CASES):
        assert raw[i].tolist() == codes, f"case {i}: got {dict(zip(CLASSES, raw[i].tolist()))}"
    u0, u1 = new.labels[:, 0], new.labels[:, 1]
    reported = np.array([text is not None for text, _ in CASES])
    assert (u0[~reported] == MISSING).all() and (u1[~reported] == MISSING).all()
    want = expected()[reported]
    assert (u0[reported] == np.where(want == P, 1, 0)).all()
    assert (u1[reported] == np.where((want == P) | (want == U), 1, 0)).all()
    assert (new.ground_truth == Dataset.open(ds).ground_truth).all()  # everything else is kept
    assert (tmp_path / "new" / "reports.csv").exists()
    assert not (tmp_path / "new.reports.partial").exists()
    for text, _ in CASES:  # report text never reaches the terminal
        assert text is None or text.split(".")[0] not in result.output


def test_info_shows_the_labellers_counts(tmp_path, cli):
    ds = make_reports_dataset(tmp_path)
    cli("label-reports", ds, "--out", tmp_path / "new", "--workers", "0", "--labeller", "context")
    info = cli("info", tmp_path / "new").output
    assert "context" in info and "context_u1" in info


def test_report_files_as_mimic_stores_them(tmp_path, cli):
    inline = make_reports_dataset(tmp_path / "a")
    files = make_reports_dataset(tmp_path / "b", files=True)
    cli("label-reports", inline, "--out", tmp_path / "a" / "new", "--workers", "0")
    cli("label-reports", files, "--out", tmp_path / "b" / "new", "--workers", "0")
    a, b = Dataset.open(tmp_path / "a" / "new"), Dataset.open(tmp_path / "b" / "new")
    assert (a.raw_labels == b.raw_labels).all() and (a.labels == b.labels).all()


def test_second_labeller_is_appended(tmp_path, cli):
    ds = make_reports_dataset(tmp_path)
    cli("label-reports", ds, "--out", tmp_path / "one", "--workers", "0", "--labeller", "first")
    cli("label-reports", tmp_path / "one", "--out", tmp_path / "two", "--workers", "0", "--labeller", "second")
    two = Dataset.open(tmp_path / "two")
    assert two.labellers == ["first", "second"]
    assert two.label_set_names == ["first_u0", "first_u1", "second_u0", "second_u1"]
    assert (two.raw_labels[:, 0] == two.raw_labels[:, 1]).all()
    again = cli("label-reports", tmp_path / "two", "--out", tmp_path / "three", "--labeller", "first", ok=False)
    assert again.exit_code == 2 and "--labeller" in again.output and "already labelled" in again.output


def test_workers_give_the_same_labels(tmp_path, cli, monkeypatch):
    monkeypatch.setattr(label, "CHUNK", 3)  # several chunks, so both workers get some
    ds = make_reports_dataset(tmp_path)
    cli("label-reports", ds, "--out", tmp_path / "serial", "--workers", "0")
    cli("label-reports", ds, "--out", tmp_path / "parallel", "--workers", "2")
    serial, parallel = Dataset.open(tmp_path / "serial"), Dataset.open(tmp_path / "parallel")
    assert (serial.raw_labels == parallel.raw_labels).all()
    assert (serial.raw_labels[:, 0] == expected()).all()


def test_interrupted_run_resumes_with_the_same_output(tmp_path, cli, monkeypatch):
    monkeypatch.setattr(label, "CHUNK", 4)
    ds = make_reports_dataset(tmp_path)
    cli("label-reports", ds, "--out", tmp_path / "fresh", "--workers", "0")
    calls = []
    real = engine.ReportLabeller.label

    def interrupt_second_chunk(self, texts, **kw):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, texts, **kw)

    monkeypatch.setattr(engine.ReportLabeller, "label", interrupt_second_chunk)
    result = cli("label-reports", ds, "--out", tmp_path / "new", "--workers", "0", ok=False)
    assert result.exit_code == 130
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in (tmp_path / "new.reports.partial").glob("chunk_*.npy")) == ["chunk_00000.npy"]
    calls.clear()
    monkeypatch.setattr(engine.ReportLabeller, "label", lambda self, texts, **kw: (calls.append(len(texts)),
                                                                                   real(self, texts, **kw))[1])
    cli("label-reports", ds, "--out", tmp_path / "new", "--workers", "0")
    distinct = sum(text is not None for text, _ in CASES)
    assert len(calls) == -(-distinct // 4) - 1  # every chunk but the saved first one, labelled once
    fresh, resumed = Dataset.open(tmp_path / "fresh"), Dataset.open(tmp_path / "new")
    assert (fresh.raw_labels == resumed.raw_labels).all() and (fresh.labels == resumed.labels).all()
    assert not (tmp_path / "new.reports.partial").exists()


def test_user_rules_add_a_finding_and_a_synonym(tmp_path, cli):
    cases = [("Small hiatal hernia. Right lower lobe airspace consolidation.", [P, B, P]),
             ("No hiatal hernia.", [N, P, B]),
             ("Clear lungs.", [B, P, B])]
    ds = make_reports_dataset(tmp_path, cases, classes=["Hernia", "No Finding", "Pneumonia"])
    rules = tmp_path / "extra.csv"
    rules.write_text("kind,finding,phrase,option\nmention,Hernia,hiatal hernia,\n"
                     "mention,Pneumonia,airspace consolidation,\n", encoding="utf-8")
    cli("label-reports", ds, "--out", tmp_path / "new", "--workers", "0", "--rules", rules)
    raw = Dataset.open(tmp_path / "new").raw_labels[:, 0]
    assert raw.tolist() == [codes for _, codes in cases]


def test_class_without_phrases_is_an_error(tmp_path, cli):
    ds = make_reports_dataset(tmp_path, [("No hernia.", [B])], classes=["Hernia"])
    result = cli("label-reports", ds, "--out", tmp_path / "new", ok=False)
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and "Hernia" in result.output and "--rules" in result.output
    assert not (tmp_path / "new").exists()


def test_bad_rules_row_names_file_and_line(tmp_path, cli):
    ds = make_reports_dataset(tmp_path)
    rules = tmp_path / "bad.csv"
    rules.write_text("kind,finding,phrase,option\nmention,Pneumonia,lobar pneumonia,\nnegated,,absent,sideways\n",
                     encoding="utf-8")
    result = cli("label-reports", ds, "--out", tmp_path / "new", "--rules", rules, ok=False)
    assert result.exit_code == 2
    assert f"{rules}, line 3" in result.output and "sideways" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_dataset_without_reports_is_an_error(tmp_path, cli):
    ds = make_reports_dataset(tmp_path, [(None, [X] * 7)])
    result = cli("label-reports", ds, "--out", tmp_path / "new", ok=False)
    assert result.exit_code == 2 and "no image has a report" in result.output
    assert not (tmp_path / "new").exists()


def test_label_only_dataset_stays_label_only(tmp_path, cli):
    """OpenI ingested without images (--no-images): the labelled dataset has no images either."""
    ds = make_reports_dataset(tmp_path, images=False)
    cli("label-reports", ds, "--out", tmp_path / "new", "--workers", "0")
    new = Dataset.open(tmp_path / "new")
    assert not new.has_images and not (tmp_path / "new" / "images.npy").exists()
    assert (new.raw_labels[:, 0] == expected()).all()


def test_the_new_dataset_is_a_label_layer_replaced_only_with_force(tmp_path, cli):
    """No pixel is copied: NEW reads DATASET's image cache; an earlier NEW is replaced only with --force."""
    ds = make_reports_dataset(tmp_path)
    cli("label-reports", ds, "--out", tmp_path / "new", "--workers", "0")
    new, old = Dataset.open(tmp_path / "new"), Dataset.open(ds)
    assert not (tmp_path / "new" / "images.npy").exists()
    assert new.cache_folder.resolve() == ds.resolve() and (new.images == old.images).all()
    again = cli("label-reports", ds, "--out", tmp_path / "new", "--workers", "0", ok=False)
    assert again.exit_code == 2 and again.output.strip().startswith("error: --force")
    cli("label-reports", ds, "--out", tmp_path / "new", "--workers", "0", "--labeller", "second", "--force")
    assert Dataset.open(tmp_path / "new").label_set_names == ["second_u0", "second_u1"]
