"""Timed captions (narrations) and the MIL-NCE candidates of a clip.

MIL-NCE treats a clip's own narration and its neighbours in time as candidate positives, because narration
and action drift apart in instructional videos. A clip's candidates are the caption that overlaps the clip
most (or, without overlap, the nearest one), then the others by the distance between their midpoints and
that caption's midpoint, up to `count` in all. A caption without times spans its whole clip source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Caption:
    text: str
    start: float | None = None
    end: float | None = None

    def span(self, begin: float, end: float) -> tuple[float, float]:
        """(start, end) with missing times filled by the clip source's bounds."""
        return (begin if self.start is None else self.start, end if self.end is None else self.end)


def _midpoint(span: tuple[float, float]) -> float:
    return (span[0] + span[1]) / 2


def candidates(captions: Sequence[Caption], window: tuple[float, float], count: int,
               bounds: tuple[float, float] | None = None) -> list[Caption]:
    """The clip's caption for `window` and up to `count` - 1 neighbours, nearest in time first."""
    if not captions or count < 1:
        return []
    begin, end = bounds if bounds is not None else window
    spans = [c.span(begin, end) for c in captions]
    overlaps = [min(s[1], window[1]) - max(s[0], window[0]) for s in spans]
    centre = _midpoint(window)
    # most overlap first, then the nearest midpoint, then file order; times are compared to the microsecond
    # so that float noise (times shifted by a clip start) never breaks a tie differently
    own = min(range(len(captions)), key=lambda i: (-round(max(overlaps[i], 0.0), 6),
                                                   round(abs(_midpoint(spans[i]) - centre), 6), i))
    anchor = _midpoint(spans[own])
    others = sorted((i for i in range(len(captions)) if i != own),
                    key=lambda i: (round(abs(_midpoint(spans[i]) - anchor), 6), i))
    return [captions[i] for i in [own, *others][:count]]


def random_caption_time(captions: Sequence[Caption], begin: float, end: float,
                        rng: np.random.Generator) -> float | None:
    """Midpoint of a random timed caption inside [begin, end], to centre a training clip on; None when no
    caption has times there (the clip start is then drawn uniformly)."""
    timed = [c for c in captions if c.start is not None and c.end is not None and begin <= c.start and c.end <= end]
    if not timed:
        return None
    chosen = timed[int(rng.integers(len(timed)))]
    return _midpoint((chosen.start, chosen.end))
