"""Loading a Hugging Face model from a folder on disk: offline, and without transformers' own progress bars.

``ltv embed-reports`` (a BERT-like text model) and ``ltv embed-images`` (a
vision model) both read a model saved with ``save_pretrained``. Nothing may be
downloaded -- a hospital machine often has no internet access, and a silent
download would change what the command computes -- so every load runs with
``local_files_only=True`` inside :func:`offline`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextmanager
def offline() -> Iterator[None]:
    """Set the Hugging Face offline switches for the duration of a load, then restore the caller's values."""
    saved = {name: os.environ.get(name) for name in OFFLINE_VARIABLES}
    os.environ.update({name: "1" for name in OFFLINE_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' own progress bars while loading: ltv's output (and --quiet) stays in charge."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
