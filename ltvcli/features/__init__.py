"""Image features as the model's input: adding them to a dataset, and computing them with a vision model.

* :func:`add_features`  vectors made elsewhere (a foundation model's published embeddings), matched to the images
* :func:`embed_images`  vectors from a local vision model run over the dataset's image cache

Both write the dataset's ``features.npy`` / ``features.json``
(:mod:`ltvcli.dataset.features`); ``ltv train --input features`` trains a head
on them (:mod:`ltvcli.heads`).
"""

from ltvcli.features.add import add_features
from ltvcli.features.embed import embed_images, load_image_encoder

__all__ = ["add_features", "embed_images", "load_image_encoder"]
