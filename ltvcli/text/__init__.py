"""Report text as a second input: one embedding vector per image, stored in the dataset folder.

``embed_reports`` computes the vectors with a BERT-like model from disk,
``import_embeddings`` takes vectors made elsewhere, and training reads them
with ``load_text_embeddings``. ``transformers`` (the ``ltv[text]`` extra) is
imported only when a model is loaded.
"""

from ltvcli.text.encode import POOLINGS, embed_reports, load_encoder
from ltvcli.text.imported import import_embeddings
from ltvcli.text.store import load_text_embeddings, read_text_embedding_meta, save_text_embeddings

__all__ = ["POOLINGS", "embed_reports", "import_embeddings", "load_encoder", "load_text_embeddings",
           "read_text_embedding_meta", "save_text_embeddings"]
