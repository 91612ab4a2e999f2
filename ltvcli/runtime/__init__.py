"""What every computing layer (fusion, train, text, refine, ingest) stands on: devices and precision.

Nothing here imports from the layers above, so any of them can use it without a package cycle.
"""
