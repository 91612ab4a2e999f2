"""ltv: label fusion for medical imaging datasets.

The command line (``ltv``) is a thin layer over this package; every subcommand
calls a plain Python function that a notebook user can call directly:

>>> from ltvcli.dataset import Dataset
>>> ds = Dataset.open("my-dataset")          # doctest: +SKIP
>>> ds.summary()                               # doctest: +SKIP
"""

__version__ = "0.1.0"
