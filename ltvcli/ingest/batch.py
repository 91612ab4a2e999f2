"""Batched JPEG decoding on a torch device: nvJPEG on a GPU (``ltv ingest ... --device cuda``).

A GPU decodes JPEG batches at thousands of images per second, far beyond
what the CPU cores of one machine do. :class:`BatchDecoder` reads the files
of a batch with a few threads (ahead of the decoder), decodes the plain ones
together with ``torchvision.io.decode_jpeg(list, device=...)`` and resizes
them on the device with the same antialiased bilinear filter as the CPU path
(torch's ``antialias=True`` follows Pillow's), so only the small cache images
cross back to the host.

The same code runs on ``device="cpu"`` through torchvision's CPU decoder,
which is how the tests check its pixels against the reference decode on a
machine without a GPU. nvJPEG has no reduced-size decoding, so on the CPU
this path is slower than the per-file one and ``--device cpu`` does not use
it.

Files it does not take -- anything but an 8-bit baseline JPEG with one or
three components (DICOM, PNG, progressive, 12-bit, CMYK) and streams the
device decoder rejects -- come back as ``None``: the caller decodes those one
by one on the CPU with the per-file decoder, which also reports their errors.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from torch.nn import functional
from torchvision.io import ImageReadMode, decode_jpeg

from ltvcli.ingest.jpeg import jpeg_frame

BASELINE = 0xC0


class BatchDecoder:
    """``decoder(sources, size, channels)`` -> one uint8 cache image per source, or ``None`` to decode on the CPU.

    ``batch_size`` files go to the device decoder per call (GPU memory: about
    8 MB per 2500x3000 film); ``readers`` threads read the files ahead.
    """

    def __init__(self, device: torch.device | str, batch_size: int = 64, readers: int = 8):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.readers = readers

    def __call__(self, sources: list[str], size: int, channels: int) -> list[np.ndarray | None]:
        results: list[np.ndarray | None] = [None] * len(sources)
        with ThreadPoolExecutor(self.readers) as pool:
            reads: list[Future] = [pool.submit(_read_baseline_jpeg, source) for source in sources]
            for start in range(0, len(sources), self.batch_size):
                batch = [(i, reads[i].result()) for i in range(start, min(start + self.batch_size, len(sources)))]
                batch = [(i, data) for i, data in batch if data is not None]
                if batch:
                    images = self._decode([data for _, data in batch], size, channels)
                    for (i, _), pixels in zip(batch, images):
                        results[i] = pixels
        return results

    def _decode(self, payloads: list[torch.Tensor], size: int, channels: int) -> list[np.ndarray | None]:
        """Decode and resize one batch on the device; a stream the decoder rejects becomes ``None``."""
        mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
        try:
            decoded = decode_jpeg(payloads, mode=mode, device=self.device)
        except RuntimeError:  # one damaged stream fails the whole batch: find it by decoding one at a time
            decoded = [self._decode_single(data, mode) for data in payloads]
        kept = [i for i, image in enumerate(decoded) if image is not None]
        results: list[np.ndarray | None] = [None] * len(payloads)
        if kept:
            resized = torch.stack([resize_on_device(decoded[i], size) for i in kept]).cpu()
            host = resized[:, 0] if channels == 1 else resized.permute(0, 2, 3, 1)
            for i, pixels in zip(kept, host.numpy()):
                results[i] = pixels
        return results

    def _decode_single(self, data: torch.Tensor, mode: ImageReadMode) -> torch.Tensor | None:
        try:
            return decode_jpeg(data, mode=mode, device=self.device)
        except RuntimeError:
            return None


def resize_on_device(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [C, H, W] -> uint8 [C, size, size]: bilinear with antialiasing, rounded like Pillow."""
    if tuple(image.shape[-2:]) == (size, size):
        return image
    scaled = functional.interpolate(image[None].float(), size=(size, size), mode="bilinear", antialias=True,
                                    align_corners=False)[0]
    return scaled.round_().clamp_(0, 255).to(torch.uint8)


def _read_baseline_jpeg(source: str) -> torch.Tensor | None:
    """The file's bytes as a uint8 tensor if it is an 8-bit baseline JPEG with 1 or 3 components, else ``None``."""
    try:
        with open(source, "rb") as handle:
            if handle.read(2) != b"\xff\xd8":  # not a JPEG: do not read a whole DICOM for nothing
                return None
            data = bytearray(b"\xff\xd8" + handle.read())
    except OSError:
        return None  # the per-file decoder reports it
    frame = jpeg_frame(data)
    if frame is None or not frame.plain or frame.marker != BASELINE:
        return None
    return torch.frombuffer(data, dtype=torch.uint8)
