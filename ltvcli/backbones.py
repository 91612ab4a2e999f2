"""The backbones a classifier can be built with (:func:`ltvcli.models.build_model`), and the heads on features.

Kept apart from :mod:`ltvcli.models` and :mod:`ltvcli.heads`, which import torch, so that option
declarations and the CLI's ``--arch`` / ``--head`` choices can list them without importing torch.
"""

#: torchvision's ResNets: what ``--pretrained`` and ``ltv embed-images --model`` state dicts are weights of.
RESNETS = ("resnet18", "resnet34", "resnet50")
ARCHS = ("tiny", *RESNETS)
#: Classifiers on precomputed features (:func:`ltvcli.heads.build_head`): one fully connected layer, or one
#: hidden layer before it.
HEADS = ("linear", "mlp")
