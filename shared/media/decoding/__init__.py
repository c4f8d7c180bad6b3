"""Decode exactly ``[offset, offset + duration)`` of a media file with soundfile or PyAV, no torch.

The public face of three modules: :mod:`.audio` (sample-exact audio), :mod:`.video` (frame-exact video) and
:mod:`.common` (opening a source, option checks, the readability probe).  Import from here; the split is
only so that each file can be read in one sitting.  Limits a user may raise live in their module
(``avsets.media.decoding.video.MAX_VIDEO_BYTES``).
"""

from __future__ import annotations

from .audio import HEAD_SECONDS, decode_audio, resample
from .common import (
    AUDIO_PREROLL_S,
    DECODE_ERRORS,
    MAX_FPS,
    MAX_NUM_FRAMES,
    MAX_SAMPLING_RATE,
    MAX_SIZE,
    SOUNDFILE_EXTENSIONS,
    check_decode_options,
    open_source,
    probe_media,
    round_half_up,
)
from .video import THREADED_MIN_PIXELS, VideoClip, decode_video

__all__ = [
    "AUDIO_PREROLL_S", "DECODE_ERRORS", "HEAD_SECONDS", "MAX_FPS", "MAX_NUM_FRAMES", "MAX_SAMPLING_RATE", "MAX_SIZE",
    "SOUNDFILE_EXTENSIONS", "THREADED_MIN_PIXELS", "VideoClip", "check_decode_options", "decode_audio",
    "decode_video", "open_source", "probe_media", "resample", "round_half_up",
]
