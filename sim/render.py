"""Frame renderer: composes background, bins, trays and the worker's arm, and measures what is visible.

Per frame (time ``t``):

1. *Static layer* (cached): the padded background with the visible bins (the current one and the full one it
   covers) warped in with ``warpPerspective`` from their :class:`~sim.bin_sprite.BinCanvas`, trays already
   painted in. It only changes when a tray is placed or a bin slides, so most frames reuse it.
2. The frame is a crop of the static layer at the camera-shake offset; the carried tray (with a shadow that
   grows with its height) and the arm are drawn on it; fast motion is blurred.
3. Camera effects (:mod:`sim.effects`): lighting drift and vignetting, sensor noise.

Ground truth comes from a *label buffer*: an integer image where, in painter's order, each bin's footprint is
filled with ``OCC_BIN`` (it hides everything below: the previous bin's trays), each tray with its index among
this frame's trays (1, 2, ...; so ids never run out in long videos), and the arm with ``OCC_HAND``. A tray's
visible fraction is ``(pixels still holding its id) / (pixels of its polygon drawn alone)`` -- occlusion by the
arm, by the covering bin and its walls, and by the frame edge all count -- and its box is the bounding box of its
visible pixels (x2, y2 exclusive), so boxes are always inside the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sim.background import paint_background
from sim.bin_sprite import BinCanvas, BinGeometry, paint_bin
from sim.bin_walls import BinPainter, BinSolid
from sim.draw import ONE, SHIFT, rounded_rect
from sim.effects import CameraEffects, motion_blur
from sim.lines import LinePreset
from sim.pinhole import Camera, project, rotate_translate, translate
from sim.scene import BinPlan, Timeline
from sim.tray_sprite import paint_tray, tray_shadow
from sim.worker import arm_shadow, arm_shapes, draw_arm, hand_state, label_arm

TRAY_Z = 2.0  # trays (and the floor layer holding them) are drawn on this plane: about mid-height of a tray
CARRY_LIFT_CM = 12.0  # a carried tray is this much higher than a placed one
WRIST_Z_CM = 6.0
OCC_BIN = 65534
OCC_HAND = 65535
N_TRAY_VARIANTS = 12
TRAY_CORNER_CM = 1.5
EXPOSURE = 0.5  # fraction of the frame interval the shutter is open (motion blur length)


def rng_for(seed: int, *tags: int) -> np.random.Generator:
    """Independent, reproducible random stream per purpose (scene, sprites, each bin, each frame...)."""
    return np.random.default_rng([seed, *tags])


@dataclass(frozen=True)
class TrayTruth:
    tray_id: int
    bin_id: int
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive), frame px
    visible: float


def _sprite_to_local(sprite: np.ndarray, px_per_cm: float) -> np.ndarray:
    """3x3: sprite px -> cm, sprite centre at the origin."""
    h, w = sprite.shape[:2]
    k = 1.0 / px_per_cm
    return np.array([[k, 0, -w / 2 * k], [0, k, -h / 2 * k], [0, 0, 1.0]])


def _warp_into(dst: np.ndarray, src: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Warp ``src`` with ``M`` (src px -> dst px) onto the part of ``dst`` it covers.

    Returns the warped patch and its top-left corner in ``dst``, or None when it is outside ``dst``.
    """
    h, w = src.shape[:2]
    corners = project(M, np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64))
    x0 = max(0, int(math.floor(corners[:, 0].min())))
    y0 = max(0, int(math.floor(corners[:, 1].min())))
    x1 = min(dst.shape[1], int(math.ceil(corners[:, 0].max())) + 1)
    y1 = min(dst.shape[0], int(math.ceil(corners[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    patch = cv2.warpPerspective(src, translate(-x0, -y0) @ M, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return patch, (x0, y0)


def _alpha_over(dst: np.ndarray, patch: np.ndarray, x0: int, y0: int) -> None:
    h, w = patch.shape[:2]
    roi = dst[y0:y0 + h, x0:x0 + w]
    a = patch[..., 3:4].astype(np.float32) * (1 / 255.0)
    roi[:] = (roi * (1 - a) + patch[..., :3] * a).astype(np.uint8)


def _darken(dst: np.ndarray, patch: np.ndarray, x0: int, y0: int, strength: float) -> None:
    h, w = patch.shape[:2]
    roi = dst[y0:y0 + h, x0:x0 + w]
    roi[:] = (roi * (1 - strength * patch)[..., None]).astype(np.uint8)


def _fill_label(label: np.ndarray, pts: np.ndarray, value: int) -> None:
    cv2.fillPoly(label, [np.round(pts * ONE).astype(np.int32).reshape(-1, 1, 2)], value, cv2.LINE_8, SHIFT)


class Renderer:
    """Renders the frames of one :class:`~sim.scene.Timeline`; call :meth:`render` with increasing times."""

    def __init__(self, preset: LinePreset, camera: Camera, timeline: Timeline, seed: int, fps: float) -> None:
        self.preset, self.cam, self.timeline, self.seed, self.fps = preset, camera, timeline, seed, fps
        self.W, self.H = camera.width, camera.height
        self.k = self.W / 1280.0
        self.margin = int(math.ceil(4 * preset.shake_px * self.k)) + 2
        self.H_pad = translate(self.margin, self.margin) @ camera.H
        self.ppc = camera.scale_at(0.0, 0.0)
        self.geo = BinGeometry.of(preset)
        sprite_rng = rng_for(seed, 2)
        self.tray_sprites = [paint_tray(preset, sprite_rng, self.ppc) for _ in range(N_TRAY_VARIANTS)]
        self.tray_shadows = [tray_shadow(s, 0.5 * self.ppc) for s in self.tray_sprites]
        ow, oh = self.geo.outer_size
        self.background = paint_background(preset, self.H_pad, self.W, self.H, self.margin,
                                           (ow / 2 + 16, oh / 2 + 12), rng_for(seed, 3))
        self.effects = CameraEffects(preset, self.W, self.H, rng_for(seed, 4))
        self.canvases: dict[int, BinCanvas] = {}
        self.pasted: dict[int, int] = {}
        self.static: np.ndarray | None = None
        self.static_key: tuple = ()
        self.tray_outline = rounded_rect(*preset.tray_size_cm, TRAY_CORNER_CM, per_corner=4)
        self.painter = BinPainter(BinSolid.of(self.geo, preset.bin_depth_cm), camera.H_at, camera.center[:2])
        self.pad = translate(self.margin, self.margin)

    # -- scene state -------------------------------------------------------------------------------------------
    def _visible_bins(self, t: float) -> list[BinPlan]:
        """The current bin and the full one it covers; canvases of bins buried deeper are freed."""
        bins = self.timeline.bins_arrived(t)[-2:]
        keep = {b.bin_id for b in bins}
        for bin_id in [i for i in self.canvases if i not in keep]:
            del self.canvases[bin_id]
        return bins

    def _canvas(self, b: BinPlan, t: float) -> BinCanvas:
        """The bin's canvas with every tray placed by ``t`` painted in (trays are pasted in time order)."""
        if b.bin_id not in self.canvases:
            self.canvases[b.bin_id] = paint_bin(self.preset, rng_for(self.seed, 5, b.variant), self.ppc)
            self.pasted[b.bin_id] = 0
        canvas = self.canvases[b.bin_id]
        n = self.pasted[b.bin_id]
        while n < len(b.trays) and b.trays[n].place_t <= t:
            tp = b.trays[n]
            canvas.paste(self.tray_sprites[tp.variant], self.tray_shadows[tp.variant], tp.x, tp.y, tp.angle)
            n += 1
        self.pasted[b.bin_id] = n
        return canvas

    def _static_layer(self, bins: list[tuple[BinPlan, BinCanvas, np.ndarray]]) -> np.ndarray:
        key = tuple((b.bin_id, c.version, np.round(pose, 5).tobytes()) for b, c, pose in bins)
        if self.static is not None and key == self.static_key:
            return self.static
        img = self.background.copy()
        depth = self.preset.bin_depth_cm
        for _b, canvas, pose in bins:
            to_local = canvas.canvas_to_local()
            shadow = _warp_into(img, canvas.shadow, self.pad @ self.cam.H_at(0.0) @ pose @ to_local)
            if shadow is not None:
                _darken(img, shadow[0], *shadow[1], 0.5)
            wall = canvas.wall_color
            cv2.fillConvexPoly(img, np.round(self.painter.silhouette(pose, self.pad) * ONE).astype(np.int32),
                               tuple(c * 0.7 for c in wall), cv2.LINE_AA, SHIFT)
            patch = _warp_into(img, canvas.bgra, self.pad @ self.cam.H_at(TRAY_Z) @ pose @ to_local)
            if patch is not None:
                _alpha_over(img, patch[0], *patch[1])
            inner, outer, _rim = self.painter.faces(pose, self.pad)
            self.painter.paint_faces(img, inner, tuple(c * 0.85 for c in wall))
            self.painter.paint_faces(img, outer, wall)
            rim = _warp_into(img, canvas.rim, self.pad @ self.cam.H_at(depth) @ pose @ to_local)
            if rim is not None:
                _alpha_over(img, rim[0], *rim[1])
        self.static, self.static_key = img, key
        return img

    # -- one frame ---------------------------------------------------------------------------------------------
    def render(self, t: float, index: int, want_image: bool = True) -> tuple[np.ndarray | None, list[TrayTruth]]:
        """The frame at time ``t`` (None when ``want_image`` is False) and the truth of every visible tray."""
        dx, dy = self.effects.shake(t)
        shake = translate(-dx, -dy)
        Ht = shake @ self.cam.H_at(TRAY_Z)
        bins = [(b, self._canvas(b, t), b.pose(t)) for b in self._visible_bins(t)]
        label = np.zeros((self.H, self.W), np.uint16)
        drawn: list[tuple[int, int, np.ndarray]] = []
        for b, _canvas, pose in bins:
            _fill_label(label, self.painter.silhouette(pose, shake), OCC_BIN)
            for tp in b.trays[: self.pasted[b.bin_id]]:
                poly = project(Ht @ pose @ rotate_translate(tp.angle, tp.x, tp.y), self.tray_outline)
                drawn.append((tp.tray_id, b.bin_id, poly))
                _fill_label(label, poly, len(drawn))
            inner, outer, rim = self.painter.faces(pose, shake)
            self.painter.label_quads(label, [f.quad for f in inner + outer] + rim, OCC_BIN)
        frame = None
        if want_image:
            static = self._static_layer(bins)
            m = self.margin
            frame = static[m + dy:m + dy + self.H, m + dx:m + dx + self.W].copy()
        move = self.timeline.move_at(t)
        if move is not None:
            self._draw_hand(frame, label, drawn, move, t, shake)
        truths = self._measure(label, drawn)
        if frame is not None:
            rng = rng_for(self.seed, 7, index)
            self.effects.lighting(frame, t)
            self.effects.noise(frame, rng)
        return frame, truths

    def _draw_hand(self, frame: np.ndarray | None, label: np.ndarray, drawn: list[tuple[int, int, np.ndarray]],
                   move, t: float, shake: np.ndarray) -> None:
        """The carried tray and the arm: shadows first, then the objects, then motion blur of what moved."""
        state = hand_state(move, t, self.preset.tray_size_cm)
        wrist_z = WRIST_Z_CM + CARRY_LIFT_CM * state.tray_height
        ppc = self.cam.scale_at(*state.wrist, z=wrist_z)
        arm = arm_shapes(lambda z: shake @ self.cam.H_at(z), state, ppc, state.tray_center is not None, wrist_z)
        boxes: list[tuple[float, float, float, float]] = [arm.bbox()]
        carried = None
        carried_value = 0  # its value in the label buffer once drawn
        if state.tray_center is not None and move.tray_id is not None:
            tp = self.timeline.trays[move.tray_id]
            cx, cy = state.tray_center
            place = translate(cx, cy) @ rotate_translate(state.tray_angle, 0, 0)
            Hc = shake @ self.cam.H_at(TRAY_Z + CARRY_LIFT_CM * state.tray_height)
            poly = project(Hc @ place, self.tray_outline)
            carried = (tp, place, Hc)
            boxes.append((poly[:, 0].min(), poly[:, 1].min(), poly[:, 0].max(), poly[:, 1].max()))
        before = None
        if frame is not None:
            if carried is not None:
                tp, place, _ = carried
                shadow = self.tray_shadows[tp.variant]
                off = 1.0 + 2.5 * state.tray_height
                sm = (shake @ self.cam.H_at(TRAY_Z) @ translate(0.8 * off, 1.2 * off) @ place
                      @ _sprite_to_local(shadow, self.ppc))
                sp = _warp_into(frame, shadow, sm)
                if sp is not None:
                    _darken(frame, sp[0], *sp[1], 0.45 - 0.2 * state.tray_height)
            arm_shadow(frame, arm, (2.5 * ppc, 3.5 * ppc), 2.0 * ppc, 0.35)
            before = frame.copy()  # what lies behind the moving things, shadows included
            if carried is not None:
                tp, place, Hc = carried
                sprite = self.tray_sprites[tp.variant]
                tpatch = _warp_into(frame, sprite, Hc @ place @ _sprite_to_local(sprite, self.ppc))
                if tpatch is not None:
                    _alpha_over(frame, tpatch[0], *tpatch[1])
            draw_arm(frame, arm, self.preset.glove_color, self.preset.sleeve_color)
        if carried is not None:
            tp, place, Hc = carried
            poly = project(Hc @ place, self.tray_outline)
            drawn.append((tp.tray_id, tp.bin_id, poly))
            _fill_label(label, poly, len(drawn))
            carried_value = len(drawn)
        label_arm(label, arm, OCC_HAND)
        if frame is not None and before is not None:
            v = state.speed_cm_s * ppc * EXPOSURE / self.fps
            ux, uy = state.direction
            x0 = max(0, int(min(b[0] for b in boxes)) - 20)
            y0 = max(0, int(min(b[1] for b in boxes)) - 20)
            x1 = min(self.W, int(max(b[2] for b in boxes)) + 20)
            y1 = min(self.H, int(max(b[3] for b in boxes)) + 20)
            if x1 > x0 and y1 > y0:
                lab = label[y0:y1, x0:x1]
                moving = lab == OCC_HAND
                if carried is not None:
                    moving |= lab == carried_value
                motion_blur(frame[y0:y1, x0:x1], before[y0:y1, x0:x1], moving, (ux * v, uy * v))

    def _measure(self, label: np.ndarray, drawn: list[tuple[int, int, np.ndarray]]) -> list[TrayTruth]:
        out: list[TrayTruth] = []
        for value, (tray_id, bin_id, poly) in enumerate(drawn, start=1):
            x0, y0 = int(math.floor(poly[:, 0].min())), int(math.floor(poly[:, 1].min()))
            x1, y1 = int(math.ceil(poly[:, 0].max())) + 1, int(math.ceil(poly[:, 1].max())) + 1
            alone = np.zeros((y1 - y0, x1 - x0), np.uint8)
            _fill_label(alone, poly - (x0, y0), 1)
            full = int(np.count_nonzero(alone))
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(self.W, x1), min(self.H, y1)
            if full == 0 or cx1 <= cx0 or cy1 <= cy0:
                continue
            mine = label[cy0:cy1, cx0:cx1] == value
            seen = int(np.count_nonzero(mine))
            if seen == 0:
                continue
            cols = np.flatnonzero(mine.any(0))
            rows = np.flatnonzero(mine.any(1))
            box = (cx0 + int(cols[0]), cy0 + int(rows[0]), cx0 + int(cols[-1]) + 1, cy0 + int(rows[-1]) + 1)
            out.append(TrayTruth(tray_id, bin_id, box, min(1.0, seen / full)))
        return out
