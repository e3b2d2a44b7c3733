"""Rendering of the serving environments: a text view and a small picture."""

from __future__ import annotations

import numpy as np

from ..sim.engine import Engine
from ..sim.request import Request, RequestState

_STATE_CHAR = {
    RequestState.WAITING: "w",
    RequestState.RUNNING: "R",
    RequestState.PAUSED: "p",
    RequestState.SWAPPED: "s",
}


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


def render_rgb(history: list[tuple[float, float, int]], engine: Engine, height: int = 128, width: int = 256) -> np.ndarray:
    """(height, width, 3) uint8: KV utilisation over time (top, blue) and requests in the system (bottom, red)."""
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    if not history:
        return image
    kv = np.array([h[1] for h in history])
    queue = np.array([h[2] for h in history], dtype=float)
    columns = np.linspace(0, len(history) - 1, width).astype(int)
    half = height // 2
    kv_rows = np.clip((kv[columns] * (half - 1)).astype(int), 0, half - 1)
    peak = max(queue.max(), 1.0)
    queue_rows = np.clip((queue[columns] / peak * (half - 1)).astype(int), 0, half - 1)
    for x in range(width):
        image[half - 1 - kv_rows[x] : half, x] = (60, 90, 200)
        image[height - 1 - queue_rows[x] :, x] = (200, 70, 60)
    image[half, :] = 0
    return image
