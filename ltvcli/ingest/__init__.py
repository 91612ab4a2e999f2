"""Ingest sources: each parses its own files into a DatasetSpec and ends in build_dataset.

One public function per source (``ingest_mimic``, ``ingest_openi``, ``ingest_nih``,
``ingest_chexpert``, ``ingest_table``, ``ingest_cifar10``, ``ingest_npz``) is what the CLI and notebooks call; the
modules are imported lazily by their callers so that ``import ltvcli.ingest``
stays cheap.
"""
