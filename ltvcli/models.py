"""The classifier: a ResNet trunk, global average pooling (GAP) and one fully connected layer.

This is the paper's backbone (ResNet-50 from conv1 to res5c + GAP + FC). The
network is split into named stages because learning-to-vote needs them:

* ``trunk(x)``      conv1 .. layer3 -- the part ``--meta-scope last`` keeps fixed;
* ``last_stage(h)`` layer4 + GAP    -- the part whose virtual update it recomputes;
* ``head(f)``       the FC layer on the GAP feature F (optionally with text, later).

``features(x) = last_stage(trunk(x))`` is the F_m of equation 2, and
``forward(x) = head(features(x))`` gives logits. ``tiny`` is a four-stage CNN
with the same interface, for tests and CPU demos.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ltvcli.errors import LtvError

ARCHS = ("tiny", "resnet18", "resnet34", "resnet50")


class LtvNet(nn.Module):
    """Trunk -> last stage -> GAP -> FC, with each part callable on its own."""

    def __init__(self, stem: nn.Module, last: nn.Module, feature_dim: int, n_classes: int):
        super().__init__()
        self.stem = stem
        self.last = last
        self.feature_dim = feature_dim
        self.fc = nn.Linear(feature_dim, n_classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)

    def last_stage(self, h: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.last(h), 1), 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_stage(self.trunk(x))

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f)

    def forward(self, x: torch.Tensor, return_parts: bool = False):
        """Logits; with ``return_parts`` also the trunk output h and the GAP feature F.

        Methods that need h or F get them from this one call, so the forward
        still runs through a DistributedDataParallel wrapper when there is one.
        """
        h = self.trunk(x)
        f = self.last_stage(h)
        logits = self.head(f)
        return (logits, h, f) if return_parts else logits

    def last_scope_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Named parameters of layer4 and the FC layer: what ``--meta-scope last`` updates virtually."""
        return [(n, p) for n, p in self.named_parameters() if n.startswith(("last.", "fc."))]


def build_model(arch: str, n_classes: int, in_channels: int = 1, image_size: int = 256,
                pretrained: str | Path | None = None) -> LtvNet:
    """Build an :class:`LtvNet`; ``pretrained`` is a local torchvision state dict (nothing is downloaded).

    Gray images use a one-channel first convolution; a pretrained RGB
    ``conv1`` is summed over its input channels, which keeps its response to
    a gray image equal to the response to that image repeated three times.
    For small inputs (CIFAR's 32x32) the ResNet stem uses a 3x3 stride-1
    convolution and no max-pool, the usual CIFAR adaptation.
    """
    if arch not in ARCHS:
        raise LtvError(f"unknown --arch {arch!r}; expected one of {', '.join(ARCHS)}")
    if arch == "tiny":
        return _tiny(n_classes, in_channels)
    import torchvision

    resnet = getattr(torchvision.models, arch)(weights=None)
    if pretrained is not None:
        _load_pretrained(resnet, Path(pretrained))
    conv1 = resnet.conv1
    small = image_size <= 64
    new_conv = nn.Conv2d(in_channels, 64, kernel_size=3 if small else 7, stride=1 if small else 2,
                         padding=1 if small else 3, bias=False)
    if pretrained is not None and not small:
        with torch.no_grad():
            weight = conv1.weight
            new_conv.weight.copy_(weight.sum(1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels
                                  if in_channels != 3 else weight)
    stem = nn.Sequential(new_conv, resnet.bn1, resnet.relu, nn.Identity() if small else resnet.maxpool,
                         resnet.layer1, resnet.layer2, resnet.layer3)
    return LtvNet(stem, resnet.layer4, resnet.fc.in_features, n_classes)


def _load_pretrained(resnet: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise LtvError(f"{path}: --pretrained file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LtvError(f"{path}: not a torch state dict ({type(exc).__name__})") from None
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("fc.")]:
        raise LtvError(f"{path}: state dict does not fit this --arch ({len(unexpected)} unexpected, "
                       f"{len(missing)} missing keys)")


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _tiny(n_classes: int, in_channels: int) -> LtvNet:
    stem = nn.Sequential(_block(in_channels, 16, 1), _block(16, 32, 2), _block(32, 32, 2))
    return LtvNet(stem, _block(32, 64, 2), 64, n_classes)
