"""Perceptual hashes (dHash, pHash) and the Hamming distance between them.

Two frames a minute apart of an idle line differ only by sensor noise and JPEG artefacts; labelling both
wastes a worker's time. A perceptual hash keeps the coarse structure of an image in 64 bits, so near
duplicates have hashes a few bits apart while a frame with one more tray in the bin moves many bits:

* **dHash**: grey, resized to 9x8, one bit per horizontal neighbour pair (``left > right + 2``, the dead band
  keeps flat areas from turning noise into bits). Robust to brightness changes (it only compares
  neighbours), cheap.
* **pHash**: grey, resized to 32x32, 2-D DCT, the 8x8 lowest frequencies without the DC term, one bit per
  coefficient (``> median``). Robust to noise and re-compression (high frequencies are discarded), a little
  more sensitive to content than dHash. The default.

Distance = number of differing bits (0..64). A frame is a near-duplicate when its distance to a recently
kept frame is ``<= threshold``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

HashKind = Literal["phash", "dhash"]
DHASH_TIE = 2.0


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image.astype(np.float32)


def dhash(image: np.ndarray) -> int:
    """64-bit difference hash of a BGR or grey image."""
    import cv2

    small = cv2.resize(_grey(image), (9, 8), interpolation=cv2.INTER_AREA)
    # a dead band of DHASH_TIE grey levels: on flat areas (a bin floor, a wall) neighbours are equal up to
    # noise, and a plain ``>`` would turn that noise into random bits
    bits = (small[:, :-1] > small[:, 1:] + DHASH_TIE).ravel()
    return _pack(bits)


def phash(image: np.ndarray) -> int:
    """64-bit DCT hash of a BGR or grey image (the classic pHash)."""
    import cv2

    small = cv2.resize(_grey(image), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].ravel()[1:]  # drop DC: overall brightness must not matter
    bits = np.concatenate([[False], low > np.median(low)])
    return _pack(bits)


def image_hash(image: np.ndarray, kind: HashKind = "phash") -> int:
    if kind == "dhash":
        return dhash(image)
    if kind == "phash":
        return phash(image)
    raise ValueError(f"unknown hash kind {kind!r}")


def hamming(a: int, b: int) -> int:
    return int(a ^ b).bit_count()


def _pack(bits: np.ndarray) -> int:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bool(bit))
    return value


class DuplicateFilter:
    """Remembers the hashes of the last ``memory`` kept frames; says whether a new one is a near-duplicate.

    Comparing against several recent frames (not only the last) also catches a line that alternates
    between two idle states (a hand in / out of view).
    """

    def __init__(self, threshold: int = 4, memory: int = 32, kind: HashKind = "phash") -> None:
        if not 0 <= threshold <= 64:
            raise ValueError(f"threshold: expected 0..64 bits, got {threshold}")
        self.threshold = threshold
        self.memory = memory
        self.kind: HashKind = kind
        self.recent: list[int] = []

    def check(self, image: np.ndarray) -> tuple[bool, int, int | None]:
        """``(is_duplicate, hash, smallest distance to a recent hash or None)``; keeps the hash if new."""
        value = image_hash(image, self.kind)
        nearest = min((hamming(value, h) for h in self.recent), default=None)
        duplicate = nearest is not None and nearest <= self.threshold
        if not duplicate:
            self.recent.append(value)
            del self.recent[:-self.memory]
        return duplicate, value, nearest
