"""`Detections`: the dataclass every detector returns and every consumer reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detections:
    """Boxes found in one frame.

    ``boxes`` are ``(N, 4)`` float32 ``[x1, y1, x2, y2]`` in the pixels of the original frame;
    ``scores`` ``(N,)`` float32; ``class_ids`` ``(N,)`` int32 indexes into ``class_names``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int32).reshape(-1)
        if not (len(self.boxes) == len(self.scores) == len(self.class_ids)):
            raise ValueError(
                f"Detections: boxes ({len(self.boxes)}), scores ({len(self.scores)}) and "
                f"class_ids ({len(self.class_ids)}) must have the same length"
            )

    @classmethod
    def empty(cls, class_names: Sequence[str] = ()) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), class_names)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def names(self) -> list[str]:
        """Class name of each detection (``str(id)`` when the id has no name)."""
        return [
            self.class_names[i] if 0 <= i < len(self.class_names) else str(int(i)) for i in self.class_ids
        ]

    @property
    def centers(self) -> np.ndarray:
        """``(N, 2)`` box centres, used by region-of-interest filtering."""
        return np.stack([(self.boxes[:, 0] + self.boxes[:, 2]) / 2, (self.boxes[:, 1] + self.boxes[:, 3]) / 2], 1)

    def filter(self, keep: np.ndarray) -> Detections:
        """A new `Detections` with the rows where the boolean mask ``keep`` is true."""
        keep = np.asarray(keep, dtype=bool)
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep], self.class_names)

    def above(self, threshold: float) -> Detections:
        return self.filter(self.scores >= threshold)

    def to_json(self) -> list[dict]:
        """The replay format's ``detections`` list: ``[{"box": [...], "score": s, "label": name}]``."""
        return [
            {"box": [round(float(v), 2) for v in box], "score": round(float(score), 4), "label": name}
            for box, score, name in zip(self.boxes, self.scores, self.names, strict=True)
        ]

    @classmethod
    def from_json(cls, items: Sequence[dict], class_names: Sequence[str] = ()) -> Detections:
        """Inverse of :meth:`to_json`; unknown labels are appended to the class names."""
        names = list(class_names)
        ids = []
        for item in items:
            label = str(item.get("label", names[0] if names else "object"))
            if label not in names:
                names.append(label)
            ids.append(names.index(label))
        if not items:
            return cls.empty(tuple(names))
        return cls(
            np.array([item["box"] for item in items], np.float32),
            np.array([item.get("score", 1.0) for item in items], np.float32),
            np.array(ids, np.int32),
            tuple(names),
        )
