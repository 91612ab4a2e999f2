"""Evaluation: models and label sets scored against trusted labels (the paper's Table 4).

``evaluate(...)`` reads files and scores them; ``score(EvalData)`` scores
arrays; ``print_result`` / ``write_outputs`` render a result. The statistics
live in :mod:`ltvcli.metrics` (shared with training's validation), input handling in
:mod:`ltvcli.evaluate.tables`.
"""

from ltvcli.evaluate.evaluate import EvaluationResult, evaluate, load_inputs, score
from ltvcli.evaluate.report import print_result, write_outputs
from ltvcli.evaluate.tables import Column, EvalData

__all__ = ["Column", "EvalData", "EvaluationResult", "evaluate", "load_inputs", "print_result", "score",
           "write_outputs"]
