"""Report vectors for the demo without a language model: TF-IDF of the reports, reduced by truncated SVD.

The paper embeds each report with BioBERT. The demo has no BERT on disk and
downloads nothing, so it stands in with scikit-learn: word uni- and bigram
TF-IDF ("no pneumothorax" and "pneumothorax" must differ), then a truncated
SVD to at most :data:`DEMO_TEXT_DIMS` dimensions (latent semantic analysis).
Only the report texts are used, never a label: like a pretrained encoder,
the vectors know nothing of the findings the model is trained to predict.
The vectors enter the dataset through the ordinary ``--embeddings FILE``
import (:func:`ltvcli.text.import_embeddings`), exactly as a site's own
BioBERT vectors would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltvcli.atomic import atomic_path
from ltvcli.dataset import Dataset
from ltvcli.errors import LtvError
from ltvcli.text import import_embeddings

#: The most dimensions the stand-in vectors get (BioBERT's are 768; the demo has a few hundred reports).
DEMO_TEXT_DIMS = 256


def report_vectors(texts: list[str], dims: int = DEMO_TEXT_DIMS, seed: int = 0) -> np.ndarray:
    """float32 [len(texts), D] LSA vectors of ``texts``, D = min(dims, distinct reports - 1, vocabulary - 1).

    The TF-IDF and the SVD are fitted on the distinct texts, so a study's
    report counts once however many images share it. All dimensions are
    divided by one common factor, to unit variance overall: the raw
    components of L2-normalised TF-IDF rows are a few hundredths, too small
    for the text branch to learn from in a few epochs from scratch. One
    factor, not one per dimension: scaling each component to unit variance
    lifts the minor ones (close to a per-report code) to the weight of the
    major ones, and the model then memorises reports instead of reading them
    (on the default demo, single+text fell to a test AUC of 0.55).
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    distinct = sorted(set(texts))
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    tfidf = vectorizer.fit_transform(distinct)
    n_components = min(dims, len(distinct) - 1, tfidf.shape[1] - 1)
    if n_components < 1:
        raise LtvError(f"{len(distinct)} distinct report(s): too few to fit report vectors for the demo")
    svd = TruncatedSVD(n_components=n_components, random_state=seed)
    vectors = svd.fit_transform(tfidf)
    vectors /= vectors.std()
    row_of = {text: k for k, text in enumerate(distinct)}
    return vectors[[row_of[text] for text in texts]].astype(np.float32)


def embed_demo_reports(dataset: Dataset, out: Path, dims: int = DEMO_TEXT_DIMS, seed: int = 0) -> dict:
    """Write the LSA vectors of ``dataset``'s reports to ``out`` (.npz by image id), import them; return the metadata.

    Images without a report are left out of the file, so the import counts
    them as missing (and ``ltv train --text`` would refuse the dataset).
    """
    texts = dataset.report_texts()
    have = [i for i, text in enumerate(texts) if text]
    if not have:
        raise LtvError(f"{dataset.path}: no image has a report; nothing to embed")
    vectors = report_vectors([texts[i] for i in have], dims, seed)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, embeddings=vectors, image_id=np.asarray(dataset.image_ids[have], dtype=str))
    return import_embeddings(dataset, out)
