"""Exponential back-off with "equal jitter" for reconnecting to cameras.

Why exponential: a camera that is rebooting comes back within seconds, one that was unplugged may stay
away for hours; doubling the delay reconnects quickly in the first case and costs almost nothing in the
second. Why jitter: a switch or NVR restart drops every camera of a plant at once; without jitter all
edge devices would retry in lock-step and hit the cameras (and the network) in bursts.

Why *equal* jitter, ``delay = base/2 + uniform(0, base/2)``, rather than "full jitter"
``uniform(0, base)``: full jitter spreads load best but can retry almost immediately after many
failures; keeping at least half the base delay guarantees the retry rate of a dead camera really
decays, while still spreading retries over a window as wide as half the delay.

``base`` is ``initial * 2**failures`` capped at ``maximum``.
"""

from __future__ import annotations

import random


class Backoff:
    """Delay sequence for consecutive failures; :meth:`reset` after a stable connection."""

    def __init__(self, initial_s: float, maximum_s: float, rng: random.Random | None = None) -> None:
        if initial_s <= 0 or maximum_s < initial_s:
            raise ValueError(f"need 0 < initial_s <= maximum_s, got {initial_s}, {maximum_s}")
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.failures = 0
        self._rng = rng or random.Random()

    @property
    def base_s(self) -> float:
        """Deterministic envelope of the next delay (before jitter)."""
        # min() before the power would be nicer, but 2**failures only overflows after ~1000 failures
        return min(self.maximum_s, self.initial_s * 2.0 ** min(self.failures, 60))

    def next_delay(self) -> float:
        """Delay before the next attempt; each call counts one more failure."""
        base = self.base_s
        self.failures += 1
        return base / 2 + self._rng.uniform(0, base / 2)

    def reset(self) -> None:
        self.failures = 0
