"""``avsets demo``: the whole load path on the bundled VGGSound sample, offline, in seconds.

It makes synthetic media for a few rows in three namings (VGGSound's ``{ytid}_{start:06d}.flac``, the
canonical ``{ytid}_{start_ms}_{end_ms}.wav`` and whole ``{ytid}.mp4`` videos cut at decode time), loads
the sample map-style and streaming, decodes a few clips and prints what it saw.
"""

from __future__ import annotations

import importlib.resources
import os
import tempfile
import time
from typing import Any

from avsets.build.api import load_dataset
from avsets.core.notices import MISSING_MEDIA, quiet
from avsets.core.segments import clip_key
from avsets.media.synth import write_audio, write_video


def sample_data_dir() -> str:
    """The bundled VGGSound metadata sample (real upstream rows; see its PROVENANCE.md)."""
    return str(importlib.resources.files("avsets.vggsound") / "sample")


def make_demo_media(out: str, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Write synthetic media for ``rows`` in three namings; return how many files of each kind."""
    os.makedirs(out, exist_ok=True)
    counts = {"flac_vggsound_name": 0, "wav_canonical_name": 0, "mp4_whole_video": 0}
    for i, row in enumerate(rows):
        ytid, start, end = row["youtube_id"], row["start"], row["end"]
        kind = i % 3
        if kind == 2 and start > 60:
            kind = 0  # keep whole videos short so the demo stays fast
        if kind == 0:
            path = os.path.join(out, "vggsound_names", f"{ytid}_{int(start):06d}.flac")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_audio(path, seconds=end - start, start=start)
            counts["flac_vggsound_name"] += 1
        elif kind == 1:
            path = os.path.join(out, f"{clip_key(ytid, start, end)}.wav")
            write_audio(path, seconds=end - start, start=start)
            counts["wav_canonical_name"] += 1
        else:
            path = os.path.join(out, "videos", f"{ytid}.mp4")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_video(path, seconds=end + 1.0, size=(64, 48))
            counts["mp4_whole_video"] += 1
    return counts


def run_demo(out: str | None = None, n_clips: int = 18, cache_dir: str | None = None) -> str:
    """Run the demo and return its summary table as text.

    The media covers a few rows on purpose, so the "rows have no media" notice is silenced, and so are
    `datasets`' per-split progress bars: the summary prints those counts itself.
    """
    import datasets

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        with quiet(MISSING_MEDIA):
            return _run_demo(out, n_clips, cache_dir)
    finally:
        if bars:
            datasets.enable_progress_bars()


def _run_demo(out: str | None, n_clips: int, cache_dir: str | None) -> str:
    t0 = time.perf_counter()
    data_dir = sample_data_dir()
    work = out or os.path.join(tempfile.gettempdir(), "avsets-demo")
    media_dir = os.path.join(work, "media")
    cache_dir = cache_dir or os.path.join(work, "cache")
    meta = load_dataset("vggsound", data_dir=data_dir, cache_dir=cache_dir)
    rows = [meta["train"][i] for i in range(0, min(len(meta["train"]), n_clips * 7), 7)][: n_clips - 3]
    rows += [meta["test"][i] for i in range(3)]
    kinds = make_demo_media(media_dir, rows)

    ds = load_dataset("vggsound", data_dir=data_dir, media_dir=media_dir, cache_dir=cache_dir)
    lines = [f"avsets demo - VGGSound sample ({data_dir})", ""]
    lines.append(f"metadata rows: train {len(meta['train'])}, test {len(meta['test'])}")
    lines.append("synthetic media: " + ", ".join(f"{v} {k}" for k, v in kinds.items()))
    lines.append(f"map-style with media (on_missing='skip'): train {len(ds['train'])}, test {len(ds['test'])}")
    lines.append("")
    lines.append(f"{'id':<28} {'label':<34} {'audio':>14} {'video (T,H,W,3)':>18} {'offset':>7}")
    names = ds["train"].features["label"].names
    for i in range(min(4, len(ds["train"]))):
        r = ds["train"][i]
        a = r["audio"]
        v = r["video"]
        a_txt = f"{a['array'].shape[0]}@{a['sampling_rate']}" if a else "-"
        v_txt = str(tuple(v["frames"].shape)) if v else "-"
        lines.append(f"{r['id']:<28} {names[r['label']][:34]:<34} {a_txt:>14} {v_txt:>18} {r['media_offset']:>7.1f}")
    stream = load_dataset("vggsound", split="train", data_dir=data_dir, media_dir=media_dir, cache_dir=cache_dir,
                          streaming=True, num_frames=4)
    seen = sum(1 for _ in stream)
    lines.append("")
    lines.append(f"streaming (num_shards={stream.num_shards}, num_frames=4): decoded {seen} train clips")
    lines.append(f"done in {time.perf_counter() - t0:.1f} s; media in {media_dir}")
    return "\n".join(lines)
