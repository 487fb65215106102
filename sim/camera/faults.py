"""Faults a replayed camera can suffer, scheduled up front (CLI) or triggered at run time (tests).

* ``disconnect``: the server drops every client and refuses connections for N seconds (a camera reboot
  or a cable pulled);
* ``stall``: connections stay open but no byte is sent for N seconds (a hung encoder, a saturated link);
  the client must notice on its own through a read timeout;
* ``freeze``: the same frame is sent for N seconds (a stuck sensor pipeline: the stream looks healthy);
* ``corrupt``: the next N frames are damaged (bit errors / truncated transfers);
* ``jitter``: for N seconds each frame interval is scaled by a random factor in [1 - j, 1 + j].
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

from edge_app.errors import EdgeAppError

FaultKind = Literal["disconnect", "stall", "freeze", "corrupt", "jitter"]
FAULT_KINDS: tuple[str, ...] = ("disconnect", "stall", "freeze", "corrupt", "jitter")


@dataclass(frozen=True, slots=True)
class Fault:
    """``kind`` starts ``at`` seconds after serving began, lasts ``amount`` (seconds; frames for
    ``corrupt``), and repeats every ``every`` seconds if given."""

    kind: FaultKind
    at: float
    amount: float
    every: float | None = None

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``KIND:AT:AMOUNT[:EVERY]``, e.g. ``disconnect:10:3`` or ``corrupt:5:10:30``."""
        parts = text.split(":")
        expected = "expected KIND:AT:AMOUNT[:EVERY] with KIND one of " + ", ".join(FAULT_KINDS)
        if len(parts) not in (3, 4) or parts[0] not in FAULT_KINDS:
            raise EdgeAppError(f"--fault {text!r}: {expected}")
        try:
            numbers = [float(p) for p in parts[1:]]
        except ValueError:
            raise EdgeAppError(f"--fault {text!r}: {expected} (numbers)") from None
        if any(n < 0 for n in numbers) or (len(numbers) == 3 and numbers[2] <= 0):
            raise EdgeAppError(f"--fault {text!r}: times must be >= 0 and EVERY > 0")
        return cls(parts[0], numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else None)  # type: ignore[arg-type]

    def due(self, since_start: float, previous: float) -> bool:
        """True if an occurrence falls in ``(previous, since_start]`` (seconds since serving began)."""
        if since_start < self.at:
            return False
        if self.every is None:
            return previous < self.at <= since_start
        last_occurrence = self.at + ((since_start - self.at) // self.every) * self.every
        return previous < last_occurrence <= since_start


class FaultState:
    """Current fault windows, shared by the frame player (freeze, corrupt, stall, jitter) and the transport
    (disconnect). Thread-safe: tests trigger faults while the player runs."""

    def __init__(self, jitter: float = 0.3) -> None:
        self._lock = threading.Lock()
        self.default_jitter = jitter
        self._freeze_until = 0.0
        self._stall_until = 0.0
        self._jitter_until = 0.0
        self._jitter = 0.0
        self._corrupt_left = 0
        self.corrupted_total = 0

    def freeze(self, seconds: float) -> None:
        with self._lock:
            self._freeze_until = max(self._freeze_until, time.monotonic() + seconds)

    def stall(self, seconds: float) -> None:
        with self._lock:
            self._stall_until = max(self._stall_until, time.monotonic() + seconds)

    def corrupt(self, n_frames: int) -> None:
        with self._lock:
            self._corrupt_left += int(n_frames)

    def jitter(self, seconds: float, fraction: float | None = None) -> None:
        fraction = self.default_jitter if fraction is None else fraction
        if not 0 <= fraction < 1:
            raise ValueError(f"jitter fraction must be in [0, 1), got {fraction}")
        with self._lock:
            self._jitter_until = time.monotonic() + seconds
            self._jitter = fraction

    @property
    def frozen(self) -> bool:
        return time.monotonic() < self._freeze_until

    @property
    def stalled(self) -> bool:
        return time.monotonic() < self._stall_until

    @property
    def jitter_fraction(self) -> float:
        return self._jitter if time.monotonic() < self._jitter_until else 0.0

    def take_corrupt(self) -> bool:
        """Consume one pending corrupt frame; True if this frame must be damaged."""
        with self._lock:
            if self._corrupt_left <= 0:
                return False
            self._corrupt_left -= 1
            self.corrupted_total += 1
            return True
