"""``print(avsets.DECODE_STATS)`` shows the counts a training loop wants (not ``<... object at 0x...>``), and
they are exact: decoded, failed (corrupt files), dropped by streaming under ``skip``; ``reset()`` zeroes them.

Each case runs in a fresh interpreter (the counter is process-wide) on real media made at test time, some
of it damaged on purpose.
"""

from __future__ import annotations

import re
import textwrap

import pytest
from ux_support import run_python

import avsets
from avsets.media.synth import write_audio
from avsets.ops.demo import sample_data_dir

CODE = textwrap.dedent("""
    import sys, warnings, avsets
    warnings.simplefilter("ignore")
    print(avsets.DECODE_STATS)
    kw = dict(data_dir=sys.argv[1], media_dir=sys.argv[2], cache_dir=sys.argv[3], on_missing=sys.argv[5])
    if sys.argv[4] == "map":
        ds = avsets.load_dataset("vggsound", split="train", **kw)
        rows = [ds[i] for i in range(len(ds))]
    else:
        rows = list(avsets.load_dataset("vggsound", split="train", streaming=True, **kw))
    print(avsets.DECODE_STATS)
    print(repr(avsets.DECODE_STATS))
    print(avsets.DECODE_STATS.as_dict())
    avsets.DECODE_STATS.reset()
    print(avsets.DECODE_STATS)
""")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    meta = avsets.load_dataset("vggsound", split="train", data_dir=sample_data_dir(), cache_dir=str(root / "c"))
    media = root / "media"
    media.mkdir()
    for i, r in enumerate(meta.select(range(5))):
        path = media / f"{r['youtube_id']}_{int(r['start']):06d}.flac"
        write_audio(path, seconds=r["end"] - r["start"])
        if i >= 3:  # two damaged files: cut short after the header
            path.write_bytes(path.read_bytes()[:200])
    return media


ZERO = "DecodeStats(audio_ok=0, audio_failed=0, video_ok=0, video_failed=0, dropped=0)"


@pytest.mark.parametrize(("mode", "on_missing", "want"), [
    ("map", "skip", "audio_ok=3, audio_failed=2, video_ok=0, video_failed=0, dropped=0"),
    # dropped: the 2 clips that fail to decode + the 863 rows of the sample's train split without media
    ("stream", "skip", "audio_ok=3, audio_failed=2, video_ok=0, video_failed=0, dropped=865"),
    ("stream", "keep", "audio_ok=3, audio_failed=2, video_ok=0, video_failed=0, dropped=0"),
])
@pytest.mark.slow
def test_decode_stats_print_readably_and_exactly(media, tmp_path, mode, on_missing, want):
    p = run_python(CODE, sample_data_dir(), str(media), str(tmp_path / "c"), mode, on_missing)
    assert p.returncode == 0, p.stderr[-2000:]
    before, after, rep, as_dict, reset = p.stdout.strip().splitlines()[-5:]
    assert before == ZERO and reset == ZERO
    assert after == rep == f"DecodeStats({want})"
    assert as_dict == "{" + ", ".join(f"'{k}': {v}" for k, v in re.findall(r"(\w+)=(\d+)", want)) + "}"
