"""The backbones a classifier can be built with (:func:`ltvcli.models.build_model`).

Kept apart from :mod:`ltvcli.models`, which imports torch, so that option declarations and the CLI's
``--arch`` choices can list them without importing torch.
"""

ARCHS = ("tiny", "resnet18", "resnet34", "resnet50")
