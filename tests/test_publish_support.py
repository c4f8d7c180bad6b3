"""Media and datasets made at test time for the publish tests (no tests of its own).

Real files only: FLAC/WAV written with soundfile, mp4 (H.264 + AAC) written with PyAV, and
``datasets.Dataset`` objects shaped like ``avsets.load_dataset(..., decode=False)`` output, built from Arrow
tables (``Audio.encode_example`` would import torch, which is not installed).
"""

from __future__ import annotations

import fractions
import io
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import soundfile as sf
from datasets import Audio, ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Value, Video
from datasets.splits import NamedSplit
from datasets.table import InMemoryTable

LABELS = ["bird chirping", "dog barking", "engine idling"]
SR = 16000


def tone(seconds: float, sr: int = SR, freq: float = 440.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A tone with a little noise (so FLAC cannot shrink it to nothing), float32 ``(samples, channels)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    x = 0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.shape)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def write_audio(path: Path, seconds: float, *, subtype: str = "PCM_16", seed: int = 0, channels: int = 1,
                sr: int = SR) -> Path:
    fmt = {"flac": "FLAC", "wav": "WAV", "ogg": "OGG"}[path.suffix[1:]]
    sf.write(str(path), tone(seconds, sr, 300 + 50 * seed, channels, seed), sr, format=fmt, subtype=subtype)
    return path


def write_mp4(path: Path, seconds: float = 2.0, fps: int = 25, size: tuple[int, int] = (64, 48),
              sr: int = SR) -> Path:
    """H.264 + AAC clip; the top band's gray level encodes the frame index (5 * i)."""
    w, h = size
    with av.open(str(path), mode="w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps)}
        as_ = c.add_stream("aac", rate=sr, layout="mono")
        for i in range(int(round(seconds * fps))):
            img = np.zeros((h, w, 3), np.uint8)
            img[:8] = min(255, i * 5)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, fractions.Fraction(1, fps)
            for pkt in vs.encode(f):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
        x = tone(seconds, sr)[:, 0]
        for s in range(0, len(x), 1024):
            af = av.AudioFrame.from_ndarray(x[None, s : s + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = sr, s, fractions.Fraction(1, sr)
            for pkt in as_.encode(af):
                c.mux(pkt)
        for pkt in as_.encode():
            c.mux(pkt)
    return path


def features(with_video: bool = True) -> Features:
    f = {
        "id": Value("string"),
        "youtube_id": Value("string"),
        "start": Value("float64"),
        "end": Value("float64"),
        "label": ClassLabel(names=LABELS),
        "audio": Audio(decode=False),
    }
    if with_video:
        f["video"] = Video(decode=False)
    f["media_offset"] = Value("float64")
    return Features(f)


def make_dataset(rows: list[dict], split: str = "train", with_video: bool = True) -> Dataset:
    """A Dataset with avsets' columns, from plain dicts (media cells ``{"bytes": None, "path": ...}``)."""
    feats = features(with_video)
    cols = {k: [r.get(k) for r in rows] for k in feats}
    table = pa.Table.from_pydict(cols, schema=feats.arrow_schema)
    return Dataset(InMemoryTable(table), info=DatasetInfo(features=feats, citation="@article{toy, title={Toy}}"),
                   split=NamedSplit(split))


def cell(path: Path | None) -> dict | None:
    return None if path is None else {"bytes": None, "path": str(path)}


def corpus_rows(media: Path, n: int, *, split: str = "train", seconds: float = 2.0, kind: str = "trimmed",
                missing_every: int = 0, seed0: int = 0, write: bool = True) -> list[dict]:
    """``n`` rows whose audio is a trimmed FLAC (``kind="trimmed"``), a whole WAV cut at 1 s (``"whole"``), or
    a whole mp4 (``"mp4"``, also the video); every ``missing_every``-th row names a file that does not exist.
    ``write=False`` only names the files (made by an earlier call with the same arguments)."""
    media.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        ytid = f"{split[:2]}{i:09d}"
        start = 0.0 if kind == "trimmed" else 1.0
        end = start + seconds
        seed = seed0 + i
        if missing_every and i % missing_every == missing_every - 1:
            audio = video = None
        elif kind == "trimmed":
            audio = media / f"{ytid}_{int(start * 1000)}_{int(end * 1000)}.flac"
            if write:
                write_audio(audio, seconds, seed=seed)
            video = None
        elif kind == "whole":
            audio = media / f"{ytid}.wav"
            if write:
                write_audio(audio, seconds + 2, seed=seed, subtype="PCM_24")
            video = None
        else:
            audio = video = media / f"{ytid}.mp4"
            if write:
                write_mp4(audio, seconds + 1.5)
        rows.append({
            "id": f"{ytid}_{int(start * 1000)}_{int(end * 1000)}", "youtube_id": ytid, "start": start, "end": end,
            "label": i % len(LABELS), "audio": cell(audio), "video": cell(video),
            "media_offset": 0.0 if kind == "trimmed" else start,
        })
    return rows


def reference_audio(row: dict) -> tuple[np.ndarray, int]:
    """The segment ``[start, end)`` read straight from the source file (integer samples where it has them)."""
    path = row["audio"]["path"]
    info = sf.info(path)
    dtype = "int16" if info.subtype == "PCM_16" else "int32"
    with sf.SoundFile(path) as f:
        a = int(round(row["media_offset"] * f.samplerate))
        b = a + int(round((row["end"] - row["start"]) * f.samplerate))
        f.seek(a)
        return f.read(min(b, f.frames) - a, dtype=dtype, always_2d=True), f.samplerate


def decode_bytes(data: bytes, like: np.ndarray) -> np.ndarray:
    return sf.read(io.BytesIO(data), dtype=str(like.dtype), always_2d=True)[0]


def as_dict(**splits: Dataset) -> DatasetDict:
    return DatasetDict(splits)
