"""avsets: Hugging Face ``datasets`` builders for audio-visual corpora (AudioSetZSL, AVSET-10M, VGGSound,
AVMIT, ASCC), with segment-exact media resolution and decoding, fetch and publish.

    >>> from avsets import load_dataset
    >>> ds = load_dataset("vggsound", data_dir="meta/", media_dir="media/", streaming=True)
"""

from __future__ import annotations

from avsets.build.api import get_dataset_config_names, list_corpora, load_dataset, load_dataset_builder  # noqa: E402
from avsets.build.transform import DECODE_STATS, MediaWarning  # noqa: E402
from avsets.build.transform import decode as decode  # noqa: E402
from avsets.core.errors import (  # noqa: E402
    AvsetsError,
    ManualDownloadRequired,
    MediaError,
    MetadataError,
    MissingMediaError,
    MissingStreamError,
    UnsafePathError,
)
from avsets.core.segments import Segment, clip_key, parse_media_name  # noqa: E402
from avsets.core.version import __version__
from avsets.media.decoding import decode_audio, decode_video  # noqa: E402

__all__ = [
    "__version__",
    "load_dataset",
    "load_dataset_builder",
    "get_dataset_config_names",
    "list_corpora",
    "decode",
    "decode_audio",
    "decode_video",
    "Segment",
    "clip_key",
    "parse_media_name",
    "AvsetsError",
    "MetadataError",
    "MediaError",
    "MissingMediaError",
    "MissingStreamError",
    "UnsafePathError",
    "ManualDownloadRequired",
    "MediaWarning",
    "DECODE_STATS",
]
