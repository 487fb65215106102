"""The scene's timeline: which bin is where, which tray is placed when, where the worker's hand is.

Story of one bin (all times in seconds, planned up front from the seed, independent of fps and resolution):

1. ``arrive_t``: the empty bin starts sliding in from the line's ``bin_from`` edge, over the previous (full)
   bin, easing out; at ``settled_t`` it is in place and covers the previous bin's trays completely (the previous
   bin's ``covered_t``). The first bin is already in place at ``t = 0``.
2. For each tray: the worker's hand enters from the ``hand_side`` edge carrying the tray (``enter_t``), reaches
   its slot, lowers it and lets go (``place_t``: from then on the tray is in the bin), and leaves. Slots are
   filled one at a time in a per-bin order; a bin's true count is drawn from ``trays_per_bin``.
3. With probability ``occlusion_rate`` after each placement the hand comes back empty and rests over the
   placed trays for a while (straightening a tray): extra occlusion with no count change.
4. ``filled_t`` is the last placement; after a pause the next bin arrives.

Positions are on the table plane in cm (see :mod:`sim.pinhole`); a bin's slots come from
:class:`sim.bin_sprite.BinGeometry`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from sim.bin_sprite import BinGeometry
from sim.lines import LinePreset
from sim.pinhole import rotate_translate

SLIDE_S = 1.5  # a new bin's slide
SLIDE_CM = 80.0  # how far away it starts
ARM_SEGMENT_CM = 34.0  # upper arm and forearm
TAIL_S = 1.5  # video continues this long after the last bin is covered


@dataclass(frozen=True)
class TrayPlan:
    tray_id: int
    bin_id: int
    slot: int
    x: float  # bin-local cm
    y: float
    angle: float  # degrees
    variant: int
    enter_t: float
    place_t: float


@dataclass(frozen=True)
class HandMove:
    """One trip of the hand: in from ``shoulder`` side to ``target`` (plane cm), hold, back out."""

    start_t: float
    reach_t: float
    release_t: float
    end_t: float
    shoulder: tuple[float, float]
    target: tuple[float, float]
    bin_id: int
    tray_id: int | None  # None: an empty-handed occluding visit
    tray_angle: float = 0.0  # plane angle of the carried tray when placed (degrees)


@dataclass
class BinPlan:
    bin_id: int
    trays: list[TrayPlan]
    angle: float
    dx: float
    dy: float
    from_dir: tuple[float, float]
    arrive_t: float
    settled_t: float
    filled_t: float = 0.0
    covered_t: float | None = None
    variant: int = 0

    def pose(self, t: float) -> np.ndarray:
        """3x3 bin-local cm -> plane cm at time ``t`` (slides in, cubic ease-out)."""
        if t >= self.settled_t or self.settled_t <= self.arrive_t:
            u = 1.0
        else:
            u = max(0.0, (t - self.arrive_t) / (self.settled_t - self.arrive_t))
        k = (1 - u) ** 3 * SLIDE_CM
        return rotate_translate(self.angle, self.dx + self.from_dir[0] * k, self.dy + self.from_dir[1] * k)


@dataclass
class Timeline:
    bins: list[BinPlan]
    moves: list[HandMove]
    end_t: float
    geometry: BinGeometry
    trays: dict[int, TrayPlan] = field(default_factory=dict)
    _move_starts: list[float] = field(default_factory=list, repr=False)
    _bin_arrivals: list[float] = field(default_factory=list, repr=False)

    def move_at(self, t: float) -> HandMove | None:
        """The hand trip under way at ``t`` (trips never overlap and are in time order: a binary search)."""
        i = bisect.bisect_right(self.move_starts, t) - 1
        if i >= 0 and t < self.moves[i].end_t:
            return self.moves[i]
        return None

    def bins_arrived(self, t: float) -> list[BinPlan]:
        """Bins that have started arriving by ``t``, in order."""
        return self.bins[: bisect.bisect_right(self.bin_arrivals, t)]

    @property
    def move_starts(self) -> list[float]:
        if len(self._move_starts) != len(self.moves):
            self._move_starts = [m.start_t for m in self.moves]
        return self._move_starts

    @property
    def bin_arrivals(self) -> list[float]:
        if len(self._bin_arrivals) != len(self.bins):
            self._bin_arrivals = [b.arrive_t for b in self.bins]
        return self._bin_arrivals


_EDGE_DIRS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "top": (0.0, -1.0), "bottom": (0.0, 1.0)}


def _fill_order(rng: np.random.Generator, rows: int, cols: int) -> list[int]:
    """Slot order for one bin: row by row or column by column, from a random corner."""
    order = [r * cols + c for r in range(rows) for c in range(cols)]
    if rng.random() < 0.5:
        order = [r * cols + c for c in range(cols) for r in range(rows)]
    if rng.random() < 0.5:
        order = order[::-1]
    return order


def plan(preset: LinePreset, rng: np.random.Generator, view: tuple[float, float, float, float],
         n_bins: int | None, duration: float | None, occlusion_rate: float, n_variants: int) -> Timeline:
    """Plan bins and hand moves until ``n_bins`` are filled and covered, or past ``duration`` seconds.

    ``view`` is the visible part of the plane (xmin, xmax, ymin, ymax) in cm: the arm comes from beyond it.
    """
    geo = BinGeometry.of(preset)
    hand_dir = _EDGE_DIRS[preset.hand_side]
    from_dir = _EDGE_DIRS[preset.bin_from]
    bins: list[BinPlan] = []
    moves: list[HandMove] = []
    trays: dict[int, TrayPlan] = {}
    t = 0.0
    tray_id = 0
    lo, hi = preset.trays_per_bin
    target_bins = n_bins if n_bins is not None else 10**6
    horizon = duration if duration is not None else math.inf
    while len(bins) < target_bins + 1 and t < horizon:
        bin_id = len(bins) + 1
        arrive = t
        settled = t if bin_id == 1 else t + SLIDE_S
        b = BinPlan(bin_id=bin_id, trays=[], angle=float(rng.uniform(-1.5, 1.5)), dx=float(rng.uniform(-0.8, 0.8)),
                    dy=float(rng.uniform(-0.8, 0.8)), from_dir=from_dir, arrive_t=arrive, settled_t=settled,
                    variant=int(rng.integers(1 << 30)))
        if bins:
            bins[-1].covered_t = settled
        bins.append(b)
        if bin_id > target_bins:  # the empty bin that covers the last counted one
            t = settled + TAIL_S
            break
        pose = b.pose(math.inf)
        count = int(rng.integers(lo, hi + 1))
        order = _fill_order(rng, geo.rows, geo.cols)[:count]
        t = settled + float(rng.uniform(0.8, 1.6))
        placed: list[tuple[float, float]] = []
        for slot in order:
            cycle = preset.fill_rate_s * float(rng.uniform(0.75, 1.25))
            t_in = min(max(0.32 * cycle, 0.5), 1.3)
            hold = min(max(0.15 * cycle, 0.25), 0.7)
            t_out = min(max(0.25 * cycle, 0.4), 1.0)
            sx, sy = geo.slot_center(slot)
            jit = geo.gap * 0.2
            x, y = sx + float(rng.uniform(-jit, jit)), sy + float(rng.uniform(-jit, jit))
            angle = float(rng.uniform(-2.5, 2.5))
            tray_id += 1
            tp = TrayPlan(tray_id, bin_id, slot, x, y, angle, int(rng.integers(n_variants)), t, t + t_in + hold)
            b.trays.append(tp)
            trays[tray_id] = tp
            target = pose @ np.array([x, y, 1.0])
            shoulder = _shoulder(rng, hand_dir, view)
            moves.append(HandMove(t, t + t_in, t + t_in + hold, t + t_in + hold + t_out, shoulder,
                                  (float(target[0]), float(target[1])), bin_id, tray_id, angle + b.angle))
            placed.append((float(target[0]), float(target[1])))
            end = t + t_in + hold + t_out
            t = max(t + cycle, end + 0.05)
            if rng.random() < occlusion_rate:
                px, py = placed[int(rng.integers(len(placed)))]
                rest = float(rng.uniform(0.5, 1.5))
                tgt = (px + float(rng.uniform(-3, 3)), py + float(rng.uniform(-3, 3)))
                moves.append(HandMove(t, t + 0.6, t + 0.6 + rest, t + 1.2 + rest, _shoulder(rng, hand_dir, view),
                                      tgt, bin_id, None))
                t += 1.25 + rest
        b.filled_t = b.trays[-1].place_t
        t += float(rng.uniform(1.5, 3.0))
    end_t = duration if duration is not None else t
    return Timeline(bins=bins, moves=moves, end_t=end_t, geometry=geo, trays=trays)


def _shoulder(rng: np.random.Generator, hand_dir: tuple[float, float],
              view: tuple[float, float, float, float]) -> tuple[float, float]:
    """Where the arm comes from: beyond the ``hand_dir`` edge of the visible plane, a little to either side."""
    xmin, xmax, ymin, ymax = view
    dx, dy = hand_dir
    along = float(rng.uniform(-12, 12))
    if dx:
        x = (xmax if dx > 0 else xmin) + 28.0 * dx
        return x, (ymin + ymax) / 2 + along
    y = (ymax if dy > 0 else ymin) + 28.0 * dy
    return (xmin + xmax) / 2 + along, y
