"""Rendering of the serving environments: a text view (``ansi``), a labelled picture
(``rgb_array``: matplotlib, drawn off screen) and a window (``human``: the same picture in a
matplotlib window, redrawn at every step; no pygame).

The picture has two panels over simulated time: the KV cache in use (% of each engine's blocks)
and the requests (or jobs) in the system, with titles, axis labels and a legend. Its history is
thinned to at most ``MAX_HISTORY`` points (every other point dropped when full), so rendering a
long episode costs the same as a short one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..sim.engine import Engine
from ..sim.request import Request, RequestState

_STATE_CHAR = {
    RequestState.WAITING: "w",
    RequestState.RUNNING: "R",
    RequestState.PAUSED: "p",
    RequestState.SWAPPED: "s",
}
MAX_HISTORY = 2048
SIZE_PX = (640, 400)  # width, height of the rgb_array picture


def render_ansi(engine: Engine, slots: list[Request], width: int = 40) -> str:
    """Time, KV occupancy bar, batch and queue at the current decision epoch."""
    used = 1.0 - engine.free_blocks / engine.num_blocks
    bar = "#" * int(round(used * width)) + "." * (width - int(round(used * width)))
    states = [r.state for r in engine.live]
    lines = [
        f"t={engine.now:10.3f}s  iteration {engine.iteration}  arrived {engine.arrived}  done {engine.completed}",
        f"KV [{bar}] {used:6.1%} of {engine.num_blocks} blocks",
        f"running {states.count(RequestState.RUNNING)}  paused {states.count(RequestState.PAUSED)}  "
        f"waiting {states.count(RequestState.WAITING)}  swapped {states.count(RequestState.SWAPPED)}",
    ]
    for i, r in enumerate(slots):
        lines.append(
            f"  [{i:2d}] {_STATE_CHAR.get(RequestState(r.state), '?')} id={r.id:<6d} prompt={r.prompt_len:<6d} "
            f"generated={r.generated:<5d} predicted={r.predicted_output:8.1f} blocks={r.blocks}"
        )
    return "\n".join(lines) + "\n"


class History:
    """Time series for the picture: per point the time, the KV fraction in use of each engine and
    named counts (e.g. requests in the system, in the batch)."""

    def __init__(self, engines: list[str], counts: list[str]) -> None:
        self.engines, self.counts = engines, counts
        self.points: list[tuple[float, tuple[float, ...], tuple[int, ...]]] = []

    def add(self, time: float, kv: tuple[float, ...], counts: tuple[int, ...]) -> None:
        self.points.append((time, kv, counts))
        if len(self.points) > MAX_HISTORY:
            del self.points[::2]


def _figure(history: History, title: str, unit: str) -> Any:
    from matplotlib.figure import Figure

    width, height = SIZE_PX
    fig = Figure(figsize=(width / 80, height / 80), dpi=80, layout="constrained")
    kv_ax, count_ax = fig.subplots(2, 1, sharex=True)
    times = np.array([p[0] for p in history.points])
    kv = np.array([p[1] for p in history.points]).reshape(len(times), len(history.engines)) * 100.0
    counts = np.array([p[2] for p in history.points]).reshape(len(times), len(history.counts))
    for j, name in enumerate(history.engines):
        kv_ax.step(times, kv[:, j], where="post", label=name)
    kv_ax.set_ylim(0, 100)
    kv_ax.set_ylabel("KV in use (%)")
    kv_ax.set_title("KV cache", fontsize=10)
    for j, name in enumerate(history.counts):
        count_ax.step(times, counts[:, j], where="post", label=name)
    count_ax.set_ylim(bottom=0)
    count_ax.set_ylabel(unit)
    count_ax.set_xlabel("simulated time (s)")
    count_ax.set_title(unit.capitalize(), fontsize=10)
    for ax in (kv_ax, count_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


def render_rgb(history: History, title: str, unit: str = "requests") -> np.ndarray:
    """(height, width, 3) uint8: the labelled two-panel picture (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _figure(history, title, unit)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


class HumanWindow:
    """``render_mode="human"``: the picture in a matplotlib window, redrawn on each call."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.figure: Any = None
        self.image: Any = None

    def show(self, frame: np.ndarray) -> None:
        import matplotlib
        import matplotlib.pyplot as plt

        if self.figure is None:
            self.figure = plt.figure(figsize=(frame.shape[1] / 80, frame.shape[0] / 80), dpi=80)
            self.figure.add_axes((0, 0, 1, 1)).axis("off")
            self.image = self.figure.axes[0].imshow(frame)
        else:
            self.image.set_data(frame)
        if matplotlib.get_backend().lower() != "agg":  # no window to draw on a machine without a display
            plt.pause(1.0 / self.fps)

    def close(self) -> None:
        if self.figure is not None:
            import matplotlib.pyplot as plt

            plt.close(self.figure)
            self.figure = None


class Picture:
    """What an env needs for ``rgb_array`` and ``human``: the history and, for ``human``, a window."""

    def __init__(self, mode: str, engines: list[str], counts: list[str], unit: str, fps: float) -> None:
        self.mode, self.unit = mode, unit
        self.history = History(engines, counts)
        self.window = HumanWindow(fps) if mode == "human" else None

    def render(self, title: str) -> np.ndarray | None:
        """The frame (``rgb_array``), or None after drawing it in the window (``human``)."""
        frame = render_rgb(self.history, title, self.unit)
        if self.window is None:
            return frame
        self.window.show(frame)
        return None

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
