"""The live view of a training run: one progress bar per epoch with the running loss and img/s."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ltvcli.console import console, progress_bars
from ltvcli.runtime import distributed


class LiveView:
    """One progress bar per epoch with the running loss and img/s; drawn by rank 0 on a terminal unless --quiet."""

    REFRESH_SECONDS = 1.0

    def __init__(self):
        self.enabled = progress_bars() and distributed.is_main()
        self.progress: Progress | None = None
        self.task = None
        self.last_refresh = 0.0

    def __enter__(self) -> "LiveView":
        if self.enabled:
            self.progress = Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} img/s"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=console)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=total, completed=done,
                                               loss="-", speed="-")

    def wants_refresh(self) -> bool:
        """Whether it is time to pull the running loss from the device (a sync) for the display."""
        return self.enabled and time.monotonic() - self.last_refresh >= self.REFRESH_SECONDS

    def update(self, done: int, loss: float | None = None, speed: float | None = None) -> None:
        if self.progress is None:
            return
        fields = {}
        if loss is not None:
            fields = {"loss": f"{loss:.4f}", "speed": f"{speed:.0f}" if speed else "-"}
            self.last_refresh = time.monotonic()
        self.progress.update(self.task, completed=done, **fields)
