"""``ltv demo``: a generated MIMIC-layout example and the pipeline run on it."""

from ltvcli.demo.pipeline import STEPS, DemoResult, DemoStep, run_demo
from ltvcli.demo.synth import DemoFiles, generate_mimic_example

__all__ = ["STEPS", "DemoFiles", "DemoResult", "DemoStep", "generate_mimic_example", "run_demo"]
