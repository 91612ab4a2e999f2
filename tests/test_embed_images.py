"""`ltv embed-images`: features from a local torchvision state dict or Hugging Face image model, then training on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from conftest import make_dataset
from helpers_ingest import error_line
from ltvcli.dataset import Dataset


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory) -> Path:
    """A torchvision resnet18 state dict (random weights) as a user would save one."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory) -> Path:
    """A tiny Hugging Face ViT saved with save_pretrained, and its preprocessor config (built offline from a config)."""
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vit") / "vit"
    config = ViTConfig(image_size=24, patch_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=16)
    ViTModel(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.5, 0.5],
                                                                 "image_std": [0.25, 0.25, 0.25]}))
    return folder


def images_as_floats(dataset: Dataset) -> torch.Tensor:
    """The cache of a grey dataset as [N, 3, S, S] floats in [0, 1]: what a model of three channels reads."""
    return torch.from_numpy(np.asarray(dataset.images)).float().div(255).unsqueeze(1).expand(-1, 3, -1, -1)


def test_a_torchvision_state_dict_gives_its_pooled_layer4_feature(cli, tmp_path, resnet18_weights):
    ds = make_dataset(tmp_path / "ds", n=12, size=16)
    cli("embed-images", ds.path, "--model", resnet18_weights, "--arch", "resnet18", "--batch-size", "5",
        "--device", "cpu")
    features = np.load(ds.path / "features.npy")
    meta = json.loads((ds.path / "features.json").read_text())
    assert features.shape == (12, 512)
    assert meta["source"] == "model" and meta["model"] == "resnet18.pt" and meta["arch"] == "resnet18"
    resnet = torchvision.models.resnet18(weights=None)
    resnet.load_state_dict(torch.load(resnet18_weights, weights_only=True))
    resnet.fc = torch.nn.Identity()
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1)
    with torch.no_grad():
        expected = resnet.eval()((images_as_floats(ds) - mean) / std).numpy()
    assert np.allclose(features, expected, atol=1e-4)
    cli("train", ds.path, "--out", tmp_path / "run", "--input", "features", "--method", "mv", "--epochs", "1",
        "--batch-size", "4", "--device", "cpu")


def test_a_hugging_face_folder_gives_its_pooled_output_at_its_own_size(cli, tmp_path, vit_folder):
    from transformers import ViTModel

    ds = make_dataset(tmp_path / "ds", n=10, size=16)
    cli("embed-images", ds.path, "--model", vit_folder, "--device", "cpu")
    features = np.load(ds.path / "features.npy")
    meta = json.loads((ds.path / "features.json").read_text())
    assert features.shape == (10, 8) and meta["arch"] == "vit" and meta["pooling"] == "pooler"
    assert meta["image_size"] == 24
    model = ViTModel.from_pretrained(vit_folder).eval()
    x = torch.nn.functional.interpolate(images_as_floats(ds), size=(24, 24), mode="bilinear", antialias=True,
                                        align_corners=False)
    with torch.no_grad():
        expected = model(pixel_values=(x - 0.5) / 0.25).pooler_output.numpy()
    assert np.allclose(features, expected, atol=1e-5)


def test_a_hugging_face_model_without_pooler_weights_gives_the_mean_of_its_tokens(cli, tmp_path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    folder = tmp_path / "vit"
    config = ViTConfig(image_size=16, patch_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=16)
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)  # loaded back, its pooler would be random
    ds = make_dataset(tmp_path / "ds", n=6, size=16)
    cli("embed-images", ds.path, "--model", folder, "--device", "cpu")
    assert json.loads((ds.path / "features.json").read_text())["pooling"] == "mean"
    model = ViTModel.from_pretrained(folder, add_pooling_layer=False)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1)
    with torch.no_grad():
        hidden = model.eval()(pixel_values=(images_as_floats(ds) - mean) / std).last_hidden_state
    assert np.allclose(np.load(ds.path / "features.npy"), hidden.mean(1).numpy(), atol=1e-5)


def test_features_are_replaced_only_with_force(cli, tmp_path, resnet18_weights):
    ds = make_dataset(tmp_path / "ds", n=6, size=16)
    args = ("embed-images", ds.path, "--model", resnet18_weights, "--arch", "resnet18", "--device", "cpu")
    cli(*args)
    before = (ds.path / "features.npy").stat().st_mtime_ns
    line = error_line(cli(*args, ok=False))
    assert "already has image features (512 dims from resnet18.pt)" in line and "--force" in line
    assert (ds.path / "features.npy").stat().st_mtime_ns == before
    cli(*args, "--force")


@pytest.mark.parametrize("case, expect", [
    ("no such model", "--model"),
    ("another network's weights", "state dict does not fit this --arch"),
    ("a folder without a model", "cannot load a Hugging Face model from this folder"),
    ("an unknown arch", "--arch 'vgg16': expected one of resnet18, resnet34, resnet50"),
    ("a dataset without images", "has no images to embed"),
])
def test_what_embed_images_cannot_use_is_a_one_line_error(cli, tmp_path, resnet18_weights, case, expect):
    ds = make_dataset(tmp_path / "ds", n=6, size=16)
    model, extra = resnet18_weights, ["--arch", "resnet18"]
    if case == "no such model":
        model = tmp_path / "none.pt"
    elif case == "another network's weights":
        extra = ["--arch", "resnet50"]
    elif case == "a folder without a model":
        model = tmp_path / "empty"
        model.mkdir()
    elif case == "an unknown arch":
        extra = ["--arch", "vgg16"]
    elif case == "a dataset without images":
        ds = make_dataset(tmp_path / "labels", n=6, size=16)
        (ds.path / "images.npy").unlink()
        meta = json.loads((ds.path / "dataset.json").read_text())
        (ds.path / "dataset.json").write_text(json.dumps({**meta, "has_images": False, "image_size": None,
                                                          "channels": None}))
    line = error_line(cli("embed-images", ds.path, "--model", model, *extra, "--device", "cpu", ok=False))
    assert expect in line
    assert not (ds.path / "features.npy").exists()
