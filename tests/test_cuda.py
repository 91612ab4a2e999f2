"""Tests that need a CUDA device: skipped elsewhere, run on a lent GPU by the GPU suite (stage ``cuda-tests``).

This file imports only what the lent machine's image has (no pydicom, no codec
packages), so that it can be collected there; the CPU side of each check lives
in the test file of its feature.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers_ingest import MimicImage, dicom_id, mean_difference, radiograph, write_mimic

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the GPU suite runs it)")


def test_device_cuda_ingest_matches_the_cpu_ingest(cli, tmp_path):
    rows = [MimicImage(dicom_id(i), f"1{i:07d}", f"5{i:07d}", "PA", "train") for i in range(8)]
    source = write_mimic(tmp_path / "src", images=rows, labels={}, size=(600, 500),
                         pixels=lambda i, shape: radiograph(shape, seed=i), reports=False)
    cli("ingest", "mimic", *source.args(), "--out", tmp_path / "cpu", "--size", "64", "--workers", "0")
    cli("ingest", "mimic", *source.args(), "--out", tmp_path / "gpu", "--size", "64", "--device", "cuda")
    cpu, gpu = (np.load(tmp_path / name / "images.npy") for name in ("cpu", "gpu"))
    assert gpu.shape == cpu.shape and mean_difference(gpu, cpu) <= 2
