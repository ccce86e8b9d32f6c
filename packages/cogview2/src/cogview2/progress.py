"""The outer progress bar of a pipeline call: one step per stage."""

from __future__ import annotations

from tqdm.auto import tqdm

__all__ = ["StageProgress"]


class StageProgress:
    """``start(name)`` names the stage that runs; ``done()`` counts it.

    The count says how many stages are *done* ("1/3 stages done"), so a line that names the
    stage now running never looks as if that stage had finished. The web page follows the same
    bar (``gr.Progress(track_tqdm=True)``) and shows its description.

    Args:
        total: Stages in this call.
        enabled: Draw the bar.
        prefix: Put before every stage name (e.g. ``"complete: "``).
    """

    def __init__(self, total: int, *, enabled: bool, prefix: str = "") -> None:
        self.prefix = prefix
        self.seconds: dict[str, float] = {}
        """Stage name → wall seconds it ran (filled by the pipeline as each stage ends)."""
        self.bar = tqdm(
            total=total,
            disable=not enabled,
            bar_format="{desc}{n_fmt}/{total_fmt} stages done [{elapsed}]",  # desc ends with ": ",
        )

    def start(self, name: str) -> None:
        """Stage ``name`` begins (the description changes now)."""
        self.bar.set_description(self.prefix + name)

    def done(self) -> None:
        """The stage that ran is finished."""
        self.bar.update()

    def close(self) -> None:
        """End the bar."""
        self.bar.close()
