"""Report labelling: per finding positive / negative / uncertain / not mentioned, from each image's report.

:mod:`~ltvcli.reports.rules` reads the vocabulary (``data/rules.csv`` plus
``--rules`` files), :mod:`~ltvcli.reports.engine` labels texts with
medspaCy's ConText on a blank spaCy pipeline, and
:mod:`~ltvcli.reports.label` labels a dataset's reports and writes the new
dataset (``ltv label-reports``). medspaCy is imported only when labelling.
"""
