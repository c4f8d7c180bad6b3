"""Default thresholds of the quality pass: one frozen dataclass, stored in every table's metadata.

Each default says why it was picked, so a researcher can judge whether it suits their corpus; every field
can be set per run (``avsets quality --silence-db ...`` or ``Thresholds(silence_db=...)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from avsets.core.errors import AvsetsError

_FRACTIONS = ("silent_fraction", "still_fraction", "black_luma", "black_pixel_share", "black_fraction",
              "short_fraction")


class ThresholdError(AvsetsError, ValueError):
    """A threshold that cannot mean anything (a share above 1, a negative length...)."""


@dataclass(frozen=True)
class Thresholds:
    """When a measure raises a flag. Units are in the field names (dBFS, seconds, fractions 0..1)."""

    #: a 100-ms audio window whose RMS is below this is silent. -60 dBFS is FFmpeg silencedetect's default
    #: noise floor: quiet room tone (-50) is not silence, digital zero and -70 dBFS hiss are.
    silence_db: float = -60.0
    #: ``silent`` when at least this share of the 100-ms windows is silent (a clip with one loud bang in 10 s
    #: of nothing is still useless for audio-visual learning).
    silent_fraction: float = 0.9
    #: a sample at or above this absolute level (full scale = 1.0) counts as clipped (-0.01 dBFS).
    clip_level: float = 0.999
    #: a frame is "still" when its mean absolute difference from the previous sampled frame (8-bit grey,
    #: 0..255 scale, frames decoded 64 px wide) is below this. 1.0 is well above codec noise on a static
    #: picture (~0.1-0.3) and well below the slowest real camera motion measured on the fixtures (>2).
    still_threshold: float = 1.0
    #: ``still`` when at least this share of frame pairs is still (VGGSound#6's "frames barely change").
    still_fraction: float = 0.9
    #: a frame is black when at least ``black_pixel_share`` of its pixels are darker than ``black_luma``
    #: (0..1 of full scale). Same as FFmpeg blackdetect's pic_th=0.98, pix_th=0.10.
    black_luma: float = 0.10
    black_pixel_share: float = 0.98
    #: ``black`` when at least this share of sampled frames is black.
    black_fraction: float = 0.9
    #: a scene cut is a frame whose mean absolute difference from the previous one exceeds this (0..255).
    #: 30 ~ FFmpeg ``scene`` score 0.12-0.15 on 64-px frames; cuts are counted, never flagged.
    scene_cut: float = 30.0
    #: ``short`` when the decoded duration is below this share of the segment the row asks for
    #: (``end - start``), or below ``min_duration_s`` when the row has no segment.
    short_fraction: float = 0.9
    min_duration_s: float = 1.0
    #: ``av_mismatch`` when audio and video lengths differ by more than this many seconds.
    av_mismatch_s: float = 1.0
    #: frames per second sampled for the video measures (every frame when the file has fewer).
    sample_fps: float = 4.0
    #: width in pixels frames are scaled to for the video measures (height follows the aspect ratio).
    sample_width: int = 64

    def __post_init__(self) -> None:
        bad = [f"{n}={getattr(self, n)!r} (a share in [0, 1])" for n in _FRACTIONS if not 0 <= getattr(self, n) <= 1]
        if not 0 < self.clip_level <= 1:
            bad.append(f"clip_level={self.clip_level!r} (in (0, 1])")
        if self.silence_db > 0:
            bad.append(f"silence_db={self.silence_db!r} (dBFS, at most 0)")
        for name in ("still_threshold", "scene_cut", "min_duration_s", "av_mismatch_s"):
            if getattr(self, name) < 0:
                bad.append(f"{name}={getattr(self, name)!r} (at least 0)")
        if not 0 < self.sample_fps <= 1000:
            bad.append(f"sample_fps={self.sample_fps!r} (in (0, 1000])")
        if not 8 <= self.sample_width <= 4096:
            bad.append(f"sample_width={self.sample_width!r} (in [8, 4096])")
        if bad:
            raise ThresholdError("invalid quality thresholds: " + "; ".join(bad))

    def to_dict(self) -> dict[str, Any]:
        """The thresholds as plain JSON values (stored in the table's metadata)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        """Thresholds from :meth:`to_dict` output; unknown keys (a newer avsets) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


DEFAULT_THRESHOLDS = Thresholds()
