"""What every computing layer (fusion, train, text, refine, ingest) stands on.

* :mod:`~ltvcli.runtime.device`       which device, at which precision (``resolve_device``, ``autocast``)
* :mod:`~ltvcli.runtime.distributed`  several GPUs under ``torchrun``: the few collectives ltv needs
* :mod:`~ltvcli.runtime.determinism`  deterministic kernels for the duration of a run
* :mod:`~ltvcli.runtime.rng`          seeding the global generators, saving and restoring their state
* :mod:`~ltvcli.runtime.loader`       batches of images from the memory-mapped cache onto the device
* :mod:`~ltvcli.runtime.inputs`       what a model reads per row, on the device: those images, or resident features
* :mod:`~ltvcli.runtime.hub`          loading a Hugging Face model from disk, offline and quietly

Nothing here imports from the layers above, so any of them can use it without a package cycle
(``tests/test_architecture.py`` checks it).
"""

#: The devices a command can be asked to run on (``device``); :func:`ltvcli.runtime.device.resolve_device`
#: turns one into a ``torch.device``. Declared here, without torch, so the CLI can list them.
DEVICES = ("auto", "cuda", "cpu")
#: What a model can read for each image (``input``): its pixels from the image cache, or its feature vector
#: (:mod:`ltvcli.runtime.inputs`). Declared here, without torch, so the CLI can list them.
INPUTS = ("images", "features")
