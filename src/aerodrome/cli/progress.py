"""Progress on stderr, only for a person at a terminal: never with `--json`, never into a pipe or a file, so that
scripts read exactly the result on stdout (and nothing but errors on stderr).

- `machine_wait`: a spinner with the machine's current state and a bar of the time allowed, while a wait runs;
- `activity`: a spinner with the time elapsed, for one long request the API reports nothing about (a snapshot);
- `CopyProgress`: a bar of the blobs skopeo has copied, fed its output lines, for image pushes and imports.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from aerodrome.client import Machine


def shown(console: Console, json_output: bool) -> bool:
    return not json_output and console.is_terminal


def _progress(console: Console, *extra: ProgressColumn) -> Progress:
    columns = (SpinnerColumn(), TextColumn("{task.description}"), *extra, TimeElapsedColumn())
    return Progress(*columns, console=console, transient=True)


@contextlib.contextmanager
def machine_wait(
    console: Console, enabled: bool, machine: Machine, state: str, timeout: float
) -> Iterator[Callable[[Machine], None]]:
    """A callback for each poll of the wait: it shows the state the machine is in now."""
    if not enabled:
        yield lambda current: None
        return
    started = time.monotonic()
    with _progress(console, BarColumn()) as progress:
        task = progress.add_task(f"machine {machine.id}: {machine.state}", total=max(timeout, 1.0))

        def show(current: Machine) -> None:
            waiting = "" if current.state == state else f", waiting for {state}"
            description = f"machine {current.id}: {current.state}{waiting}"
            progress.update(task, description=description, completed=time.monotonic() - started)

        yield show


@contextlib.contextmanager
def activity(console: Console, enabled: bool, description: str) -> Iterator[None]:
    if not enabled:
        yield
        return
    with _progress(console) as progress:
        progress.add_task(description, total=None)
        yield


class CopyProgress:
    """skopeo's lines (`Copying blob sha256:…`, `Copying config …`, `Writing manifest …`) as a bar of the image's
    blobs: its layers and its config."""

    def __init__(self, console: Console, enabled: bool, description: str, blobs: int) -> None:
        self._progress = _progress(console, BarColumn(), MofNCompleteColumn()) if enabled else None
        self._description = description
        self._blobs = max(blobs, 1)
        self._task: TaskID | None = None

    def __enter__(self) -> CopyProgress:
        if self._progress is not None:
            self._progress.__enter__()
            self._task = self._progress.add_task(self._description, total=self._blobs)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def line(self, text: str) -> None:
        if self._progress is None or self._task is None:
            return
        words = text.split()
        if words[:1] == ["Copying"] and len(words) >= 3:
            self._progress.update(self._task, advance=1, description=f"{self._description}: {words[2][:19]}")
        elif words[:1] == ["Writing"]:
            self._progress.update(self._task, description=f"{self._description}: writing the manifest")
