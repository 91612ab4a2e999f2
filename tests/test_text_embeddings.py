"""``ltv embed-reports``: report embeddings from a tiny random BERT on disk, or imported from a file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ltvcli.dataset import Dataset, DatasetSpec, LabelSet, build_dataset
from ltvcli.errors import LtvError
from ltvcli.text import load_text_embeddings
from ltvcli.text import encode as encode_module

transformers = pytest.importorskip("transformers")

WORDS = ("no acute cardiopulmonary process mild cardiomegaly small left right pleural effusion lower lobe "
         "pneumonia lines and tubes in place stable").split()
#: One report per study; studies 0 and 3 have the same text, study 5 has none.
STUDY_REPORTS = [
    "no acute cardiopulmonary process",
    "mild cardiomegaly",
    "small left pleural effusion and right lower lobe pneumonia",
    "no acute cardiopulmonary process",
    "lines and tubes in place stable",
    None,
]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 1-layer BERT and a word-level tokenizer, saved as a model folder would be."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = transformers.BertTokenizer(vocab_file=str(vocab))
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=37)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reports_dataset(out: Path, reports: list[str | None] = STUDY_REPORTS, images_per_study: int = 2) -> Dataset:
    """A dataset of studies with several images each; the report text of a study is inline for each image."""
    n = len(reports) * images_per_study
    image_ids = [f"img{i:02d}" for i in range(n)]
    study_of = [i // images_per_study for i in range(n)]
    splits = ["train"] * (n - 4) + ["validate"] * 2 + ["test"] * 2
    manifest = pd.DataFrame({"image_id": image_ids, "study_id": [f"5000{s}" for s in study_of], "split": splits,
                             "view": "PA", "source": ""})
    texts = pd.DataFrame({"image_id": image_ids, "text": [reports[s] for s in study_of]}).dropna()
    rng = np.random.default_rng(0)
    spec = DatasetSpec(task="multilabel", classes=["a", "b"], manifest=manifest,
                       label_sets=[LabelSet(name="set0", labeller="set0")],
                       labels=rng.integers(0, 2, (n, 1, 2)).astype(np.int8), reports=texts,
                       pixels=np.zeros((n, 16, 16), dtype=np.uint8), source={"name": "test"})
    return build_dataset(spec, out, size=16, channels=1)


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    return reports_dataset(tmp_path / "ds")


def reference_vector(model_dir: Path, text: str, pooling: str) -> np.ndarray:
    """The embedding computed directly with transformers, independent of ltv's batching."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModel.from_pretrained(model_dir).eval()
    batch = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state[0]
    return (hidden[0] if pooling == "cls" else hidden.mean(dim=0)).numpy()


# --------------------------------------------------------------- from a model
def test_embeddings_one_per_image_shared_by_study_and_text(cli, dataset, tiny_bert):
    result = cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu", "--batch-size", "2")
    assert "12 images x 32 dims (cls pooling), 2 without an embedding" in result.output
    vectors = load_text_embeddings(dataset, require_all=False)
    assert vectors.shape == (12, 32) and vectors.dtype == np.float32
    for study in range(5):
        np.testing.assert_array_equal(vectors[2 * study], vectors[2 * study + 1])  # images of one study share it
    np.testing.assert_allclose(vectors[0], vectors[6], atol=1e-6)  # studies 0 and 3: same text, same vector
    assert not np.allclose(vectors[0], vectors[2])
    assert np.isnan(vectors[10:]).all() and np.isfinite(vectors[:10]).all()  # study 5 has no report
    np.testing.assert_allclose(vectors[4], reference_vector(tiny_bert, STUDY_REPORTS[2], "cls"), atol=1e-5)
    meta = json.loads((dataset.path / "text_embeddings.json").read_text())
    assert meta["source"] == "model" and meta["model"] == str(tiny_bert.resolve())
    assert (meta["dim"], meta["pooling"], meta["max_length"], meta["missing"]) == (32, "cls", 512, 2)
    assert Dataset.open(dataset.path).labels.shape == (12, 1, 2)  # the rest of the folder is untouched
    assert not (dataset.path / "text_embeddings.partial").exists()


def test_pooling_modes_differ_and_mean_averages_tokens(cli, dataset, tiny_bert):
    cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu", "--pooling", "cls")
    cls = load_text_embeddings(dataset, require_all=False)
    cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu", "--pooling", "mean")
    mean = load_text_embeddings(dataset, require_all=False)
    assert not np.allclose(cls[:10], mean[:10])
    np.testing.assert_allclose(mean[4], reference_vector(tiny_bert, STUDY_REPORTS[2], "mean"), atol=1e-5)
    assert json.loads((dataset.path / "text_embeddings.json").read_text())["pooling"] == "mean"


def test_max_length_truncates(cli, dataset, tiny_bert):
    cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu", "--max-length", "3",
        "--pooling", "mean")
    vectors = load_text_embeddings(dataset, require_all=False)
    # study 1, "mild cardiomegaly", truncated to three tokens: [CLS] mild [SEP]
    np.testing.assert_allclose(vectors[2], reference_vector(tiny_bert, "mild", "mean"), atol=1e-5)
    result = cli("embed-reports", dataset.path, "--model", tiny_bert, "--max-length", "513", ok=False)
    assert result.exit_code == 2 and "takes at most 512 tokens" in result.output


def test_interrupted_run_resumes_with_the_remaining_chunks(cli, dataset, tiny_bert, monkeypatch):
    monkeypatch.setattr(encode_module, "CHUNK", 2)  # progress is saved every 2 distinct reports (2 batches of 1)
    original = encode_module.ReportEncoder.encode
    encoded: list[str] = []

    def interrupt_after_first_chunk(self, texts):
        if len(encoded) == 2:
            raise KeyboardInterrupt
        encoded.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(encode_module.ReportEncoder, "encode", interrupt_after_first_chunk)
    result = cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu", "--batch-size", "1",
                 ok=False)
    assert result.exit_code == 130 and "resume" in result.output
    assert (dataset.path / "text_embeddings.partial").is_dir()
    assert not (dataset.path / "text_embeddings.npy").exists()

    def count(self, texts):
        encoded.extend(texts)
        return original(self, texts)

    encoded.clear()
    monkeypatch.setattr(encode_module.ReportEncoder, "encode", count)
    result = cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu", "--batch-size", "1")
    assert "2 of 4 distinct reports already embedded" in result.output
    assert len(encoded) == 2  # 4 distinct texts, the first chunk of 2 done before the interruption
    resumed = load_text_embeddings(dataset, require_all=False)
    assert not (dataset.path / "text_embeddings.partial").exists()

    encoded.clear()
    cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu", "--batch-size", "4")
    assert len(encoded) == 4  # a finished run leaves no partial state: the next one starts over
    np.testing.assert_allclose(resumed, load_text_embeddings(dataset, require_all=False), atol=1e-5)


def test_partial_work_with_other_options_is_discarded(cli, dataset, tiny_bert, monkeypatch):
    monkeypatch.setattr(encode_module, "CHUNK", 1)
    original = encode_module.ReportEncoder.encode
    calls: list[int] = []

    def interrupt_second(self, texts):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, texts)

    monkeypatch.setattr(encode_module.ReportEncoder, "encode", interrupt_second)
    cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu", "--batch-size", "1", ok=False)
    calls.clear()

    def count(self, texts):
        calls.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(encode_module.ReportEncoder, "encode", count)
    result = cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu", "--batch-size", "1",
                 "--pooling", "mean")
    assert "discarding" in result.output and sum(calls) == 4


def test_dataset_without_reports_is_refused(cli, tmp_path, tiny_bert):
    ds = reports_dataset(tmp_path / "none", reports=[None, None])
    result = cli("embed-reports", ds.path, "--model", tiny_bert, "--device", "cpu", ok=False)
    assert result.exit_code == 2
    assert "no image has a report" in result.output and "Traceback" not in result.output
    assert not (ds.path / "text_embeddings.npy").exists()


@pytest.mark.parametrize("args, message", [
    ((), "exactly one of --model PATH"),
    (("--model", "MODEL", "--embeddings", "x.csv"), "exactly one of --model PATH"),
    (("--model", "nowhere"), "nowhere: no such folder"),
    (("--model", "MODEL", "--pooling", "max"), "--pooling 'max': expected one of cls, mean"),
    (("--model", "MODEL", "--device", "tpu"), "--device 'tpu'"),
    (("--model", "MODEL", "--batch-size", "0"), "--batch-size must be at least 1"),
    (("--model", "MODEL", "--ids", "ids.csv"), "--ids goes with a .npy --embeddings file"),
])
def test_bad_options_are_one_line_errors(cli, dataset, tiny_bert, args, message):
    args = [str(tiny_bert) if a == "MODEL" else a for a in args]
    result = cli("embed-reports", dataset.path, *args, ok=False)
    assert result.exit_code == 2 and message in result.output
    assert not (dataset.path / "text_embeddings.npy").exists()


def test_folder_that_is_not_a_model_is_refused_without_download(cli, dataset, tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    result = cli("embed-reports", dataset.path, "--model", folder, "--device", "cpu", ok=False)
    assert result.exit_code == 2 and "cannot load a tokenizer and model from this folder" in result.output


def test_model_is_loaded_offline_from_local_files_only(cli, dataset, tiny_bert, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    original = transformers.AutoModel.from_pretrained
    seen = {}

    def recording(path, **kwargs):
        seen.update(offline=os.environ.get("HF_HUB_OFFLINE"), local_files_only=kwargs.get("local_files_only"))
        return original(path, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", recording)
    cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu")
    assert seen == {"offline": "1", "local_files_only": True}
    assert "HF_HUB_OFFLINE" not in os.environ  # the caller's environment is restored


# ------------------------------------------------------------- from a file
def study_table(dim: int = 3) -> pd.DataFrame:
    """Embeddings for studies 0-3 (studies 4 and 5 are missing): vector of study s is s + 0.1 * j."""
    rows = {"study_id": [f"5000{s}" for s in range(4)]}
    rows.update({f"d{j}": [s + 0.1 * j for s in range(4)] for j in range(dim)})
    return pd.DataFrame(rows)


def test_import_csv_keyed_by_study_fans_out_to_images(cli, dataset, tmp_path):
    file = tmp_path / "study_vectors.csv"
    study_table().to_csv(file, index=False)
    result = cli("embed-reports", dataset.path, "--embeddings", file)
    assert "12 images x 3 dims (imported), 4 without an embedding" in result.output
    vectors = load_text_embeddings(dataset, require_all=False)
    np.testing.assert_allclose(vectors[6], [3.0, 3.1, 3.2])  # image 6 belongs to study 3
    np.testing.assert_allclose(vectors[7], [3.0, 3.1, 3.2])
    assert np.isnan(vectors[8:]).all()
    meta = json.loads((dataset.path / "text_embeddings.json").read_text())
    assert (meta["source"], meta["model"], meta["dim"], meta["missing"]) == ("file", "study_vectors.csv", 3, 4)


def test_import_keyed_by_image_from_parquet_npz_and_npy(cli, dataset, tmp_path):
    ids = [f"img{i:02d}" for i in range(12)]
    values = np.arange(12 * 4, dtype=np.float32).reshape(12, 4)
    parquet = tmp_path / "vectors.parquet"
    pd.DataFrame(values, columns=[f"f{j}" for j in range(4)]).assign(dicom_id=ids).to_parquet(parquet)
    npz = tmp_path / "vectors.npz"
    np.savez(npz, embeddings=values[::-1], image_id=np.array(ids[::-1]))
    npy, ids_csv = tmp_path / "vectors.npy", tmp_path / "ids.csv"
    np.save(npy, values[:10])
    pd.DataFrame({"image": ids[:10]}).to_csv(ids_csv, index=False)
    for args, missing in (((parquet,), 0), ((npz,), 0), ((npy, "--ids", ids_csv), 2)):
        result = cli("embed-reports", dataset.path, "--embeddings", *args)
        assert f"x 4 dims (imported), {missing} without an embedding" in result.output
        vectors = load_text_embeddings(dataset, require_all=False)
        np.testing.assert_array_equal(vectors[:10], values[:10])


def test_import_with_unknown_ids_names_count_and_first(cli, dataset, tmp_path):
    file = tmp_path / "vectors.csv"
    table = study_table()
    table.loc[2, "study_id"], table.loc[3, "study_id"] = "99999", "88888"
    table.to_csv(file, index=False)
    result = cli("embed-reports", dataset.path, "--embeddings", file, ok=False)
    assert result.exit_code == 2
    assert "2 of 4 study_id values are not in" in result.output and "(first: '99999')" in result.output
    assert not (dataset.path / "text_embeddings.npy").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.assign(d1=t["d1"].astype(object).where(t.index != 2, "abc")), "line 4, column 'd1': 'abc' is not"),
    (lambda t: t.assign(image_id="x"), "several id columns ('study_id', 'image_id')"),
    (lambda t: t.rename(columns={"study_id": "key"}), "no id column"),
    (lambda t: pd.concat([t, t.iloc[[1]]]), "id '50001' appears 2 times"),
])
def test_malformed_embedding_files_are_one_line_errors(cli, dataset, tmp_path, edit, message):
    file = tmp_path / "vectors.csv"
    edit(study_table()).to_csv(file, index=False)
    result = cli("embed-reports", dataset.path, "--embeddings", file, ok=False)
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1


# ------------------------------------------------------- the training API
def test_load_requires_an_embedding_for_every_image(cli, dataset, tiny_bert):
    with pytest.raises(LtvError, match="no report embeddings .*ltv embed-reports"):
        load_text_embeddings(dataset)
    cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu")
    with pytest.raises(LtvError, match="2 of 2 images of split test have no report embedding; run `ltv embed-"):
        load_text_embeddings(dataset)
    assert load_text_embeddings(dataset, require_all=False).shape == (12, 32)


def test_load_of_a_complete_dataset(cli, tmp_path, tiny_bert):
    ds = reports_dataset(tmp_path / "all", reports=STUDY_REPORTS[:5])
    cli("embed-reports", ds.path, "--model", tiny_bert, "--device", "cpu")
    vectors = load_text_embeddings(ds)
    assert vectors.shape == (10, 32) and np.isfinite(vectors).all()


def test_mismatched_files_are_detected(cli, dataset, tiny_bert):
    cli("embed-reports", dataset.path, "--model", tiny_bert, "--device", "cpu")
    np.save(dataset.path / "text_embeddings.npy", np.zeros((12, 8), dtype=np.float32))
    with pytest.raises(LtvError, match="does not match 12 images x 32 dims"):
        load_text_embeddings(dataset)
