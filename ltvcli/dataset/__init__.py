"""The dataset folder: format (reading), build (writing), label-set policies and summaries."""

from ltvcli.dataset.build import DatasetSpec, build_dataset, hold_out
from ltvcli.dataset.format import MISSING, SPLITS, Dataset, LabelSet
from ltvcli.dataset.summary import summarize

__all__ = ["Dataset", "DatasetSpec", "LabelSet", "MISSING", "SPLITS", "build_dataset", "hold_out", "summarize"]
