"""The classifier: a ResNet trunk, global average pooling (GAP) and one fully connected layer.

This is the paper's backbone (ResNet-50 from conv1 to res5c + GAP + FC). The
network is split into named stages because learning-to-vote needs them:

* ``trunk(x)``      conv1 .. layer3 -- the part ``--meta-scope last`` keeps fixed;
* ``last_stage(h)`` layer4 + GAP    -- the part whose virtual update it recomputes;
* ``head(f)``       the FC layer on the feature F.

``features(x) = last_stage(trunk(x))`` is the F_m of equation 2 (what
``vote_features`` returns), and ``forward(x) = head(features(x))`` gives
logits. :mod:`ltvcli.heads` has the same interface for a head on
precomputed features. ``tiny`` is a four-stage CNN
with the same interface, for tests and CPU demos.

With ``text_dim`` the network also reads a report embedding e (the paper's
image+text setting): ``text_mlp`` = two fully connected layers of 512 with
ReLU, and F = Cat(GAP(image), text_mlp(e)). The text joins in ``last_stage``,
so every caller that computes F -- the forward, ``features`` and the
learning-to-vote virtual features -- passes ``text`` and gets the
concatenated feature, and the text MLP belongs to the ``last`` meta scope.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ltvcli.backbones import ARCHS
from ltvcli.errors import LtvError, OptionError
#: Width of the text branch's two fully connected layers (the paper's 512).
TEXT_FEATURES = 512


def with_text(f: torch.Tensor, text: torch.Tensor | None, text_mlp: nn.Module | None, text_dim: int | None,
              kind: str) -> torch.Tensor:
    """F joined with the text MLP's output: a network built with a text branch needs the report embedding,
    one built without refuses it (the two would otherwise disagree silently about F's size)."""
    if text_mlp is None:
        if text is not None:
            raise ValueError(f"this {kind} has no text branch (built without text_dim), but text was given")
        return f
    if text is None:
        raise ValueError(f"this {kind} reads a {text_dim}-dim report embedding per image; text is missing")
    return torch.cat((f, text_mlp(text).to(f.dtype)), dim=1)

class LtvNet(nn.Module):
    """Trunk -> last stage -> GAP (+ text MLP) -> FC, with each part callable on its own."""

    def __init__(self, stem: nn.Module, last: nn.Module, image_dim: int, n_classes: int,
                 text_dim: int | None = None):
        super().__init__()
        self.stem = stem
        self.last = last
        self.image_dim = image_dim
        self.text_dim = text_dim
        self.text_mlp = None if text_dim is None else nn.Sequential(
            nn.Linear(text_dim, TEXT_FEATURES), nn.ReLU(inplace=True),
            nn.Linear(TEXT_FEATURES, TEXT_FEATURES), nn.ReLU(inplace=True))
        self.feature_dim = image_dim + (0 if text_dim is None else TEXT_FEATURES)
        self.fc = nn.Linear(self.feature_dim, n_classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)

    def last_stage(self, h: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """F from the trunk output h: GAP of layer4, concatenated with the text MLP's output when there is text."""
        f = torch.flatten(nn.functional.adaptive_avg_pool2d(self.last(h), 1), 1)
        return with_text(f, text, self.text_mlp, self.text_dim, "model")

    def features(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        return self.last_stage(self.trunk(x), text)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f)

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None, return_parts: bool = False):
        """Logits; with ``return_parts`` also the trunk output h and the feature F.

        Methods that need h or F get them from this one call, so the forward
        still runs through a DistributedDataParallel wrapper when there is one.
        """
        h = self.trunk(x)
        f = self.last_stage(h, text)
        logits = self.head(f)
        return (logits, h, f) if return_parts else logits

    def vote_stage(self, h: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """F_m of learning-to-vote from the trunk output h: the GAP feature (with the text), eq. 2's input."""
        return self.last_stage(h, text)

    def vote_features(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """F_m of learning-to-vote from the images: :meth:`features` (a head on features defines its own)."""
        return self.features(x, text)

    def last_scope_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Named parameters of layer4, the text MLP and the FC layer: what ``--meta-scope last`` updates virtually."""
        return [(n, p) for n, p in self.named_parameters() if n.startswith(("last.", "text_mlp.", "fc."))]


def build_model(arch: str, n_classes: int, in_channels: int = 1, image_size: int = 256,
                pretrained: str | Path | None = None, text_dim: int | None = None) -> LtvNet:
    """Build an :class:`LtvNet`; ``pretrained`` is a local torchvision state dict (nothing is downloaded).

    Gray images use a one-channel first convolution; a pretrained RGB
    ``conv1`` is summed over its input channels, which keeps its response to
    a gray image equal to the response to that image repeated three times.
    For small inputs (CIFAR's 32x32) the ResNet stem uses a 3x3 stride-1
    convolution and no max-pool, the usual CIFAR adaptation. ``text_dim``
    adds the text branch for report embeddings of that size.
    """
    if arch not in ARCHS:
        raise OptionError("arch", f"{arch!r}: expected one of {', '.join(ARCHS)}")
    if arch == "tiny":
        return _tiny(n_classes, in_channels, text_dim)
    import torchvision

    resnet = getattr(torchvision.models, arch)(weights=None)
    if pretrained is not None:
        load_pretrained(resnet, Path(pretrained))
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
    return LtvNet(stem, resnet.layer4, resnet.fc.in_features, n_classes, text_dim)


def load_pretrained(resnet: nn.Module, path: Path, parameter: str = "pretrained") -> None:
    """Load a local torchvision state dict into ``resnet``, all but its classifier (``fc``); one-line errors name
    ``parameter``, the option that gave ``path``."""
    if not path.is_file():
        raise LtvError(f"{path}: `{parameter}` file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LtvError(f"{path}: not a torch state dict ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise LtvError(f"{path}: holds a {type(state).__name__}, not a torch state dict")
    state = {k: v for k, v in state.items() if not str(k).startswith("fc.")}
    try:
        missing, unexpected = resnet.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, other shapes: the weights of another network
        raise LtvError(f"{path}: state dict does not fit this `arch` ({str(exc).strip().splitlines()[-1].strip()})"
                       ) from None
    if unexpected or [k for k in missing if not k.startswith("fc.")]:
        raise LtvError(f"{path}: state dict does not fit this `arch` ({len(unexpected)} unexpected, "
                       f"{len(missing)} missing keys)")


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _tiny(n_classes: int, in_channels: int, text_dim: int | None) -> LtvNet:
    stem = nn.Sequential(_block(in_channels, 16, 1), _block(16, 32, 2), _block(32, 32, 2))
    return LtvNet(stem, _block(32, 64, 2), 64, n_classes, text_dim)
