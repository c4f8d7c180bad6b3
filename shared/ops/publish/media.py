"""Cut one row's media to its segment and return the bytes to embed in a Parquet shard.

Why a module of its own: the exporter must turn "a file plus an offset and a duration" into self-contained
bytes that stock `datasets` decodes with no knowledge of segments. Three cases, cheapest first:

* the source is already the trimmed clip in the target container -> copy its bytes untouched (no decode,
  no re-encode, so the round trip is exact and the export runs at disk speed);
* libsndfile reads the source (WAV, FLAC, OGG) -> read exactly the segment's frames at the source's integer
  width and write them back losslessly (FLAC keeps 16/24-bit; float and 32-bit sources become 24-bit,
  FLAC's widest);
* anything else (AAC/Opus/MP3 in mp4/m4a/webm/...) -> decode as ``avsets.load_dataset`` does, write 24-bit FLAC.

Video (only with ``video=True``) is re-encoded to mp4 H.264 + AAC unless the source already is a trimmed
mp4, which is copied.
"""

from __future__ import annotations

import fractions
import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import av
import fsspec
import numpy as np
import pyarrow as pa
import soundfile as sf

from avsets.media.sources.access import read_media_bytes
from avsets.media.sources.locator import is_member

#: target audio formats -> (libsndfile major format, file extension)
AUDIO_FORMATS: dict[str, tuple[str, str]] = {"flac": ("FLAC", "flac"), "wav": ("WAV", "wav")}

#: seconds a trimmed file may exceed its segment and still count as "the segment" (one 44.1 kHz frame)
_TRIM_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Cut:
    """The bytes of one media cell and how they were made (``copied`` feeds the export statistics)."""

    data: bytes | pa.Buffer
    ext: str
    copied: bool


def read_source(src: str | bytes | pa.Buffer) -> pa.Buffer:
    """The bytes of a local path, an fsspec URL or bytes already in memory, as an Arrow buffer.

    An Arrow buffer rather than ``bytes`` because a copied clip goes straight into the Parquet column
    (``shards.media_column``) with no further copy; local files are read with Arrow's own file reader.
    """
    if isinstance(src, pa.Buffer):
        return src
    if isinstance(src, (bytes, bytearray, memoryview)):
        return pa.py_buffer(src)
    if is_member(src):  # an archive member or Parquet mirror row (avsets.media.sources)
        return pa.py_buffer(read_media_bytes(src))
    if "://" not in src or src.startswith("file://"):  # plain local path: skip fsspec's URL parsing per file
        with pa.OSFile(src.removeprefix("file://"), "rb") as f:
            return f.read_buffer()
    with fsspec.open(src, "rb") as f:
        return pa.py_buffer(f.read())


def _suffix(path: str | None) -> str:
    return os.path.splitext(path or "")[1].lower().lstrip(".")


def _sf_target_subtype(src_subtype: str, fmt: str) -> tuple[str, str]:
    """Pick (subtype, numpy dtype) that holds the source samples without loss (see module doc)."""
    if src_subtype in ("PCM_16", "PCM_S8", "PCM_U8"):
        return "PCM_16", "int16"
    if src_subtype == "PCM_24":
        return "PCM_24", "int32"
    if fmt == "WAV":
        if src_subtype == "PCM_32":
            return "PCM_32", "int32"
        if src_subtype in ("FLOAT", "DOUBLE"):
            return src_subtype, "float32" if src_subtype == "FLOAT" else "float64"
    if src_subtype == "PCM_32":  # into FLAC: its widest is 24 bits, the low byte goes
        return "PCM_24", "int32"
    # float and lossy (Vorbis, Opus...) sources into FLAC: 24-bit from float32
    return "PCM_24", "float32"


def cut_audio(
    src: str | bytes,
    offset: float,
    duration: float | None,
    audio_format: str = "flac",
    *,
    path_hint: str | None = None,
) -> Cut:
    """Return the audio of ``[offset, offset + duration)`` of ``src`` as ``audio_format`` bytes.

    ``duration=None`` keeps everything from ``offset`` on (rows without a segment).
    """
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {sorted(AUDIO_FORMATS)}, got {audio_format!r}")
    sf_format, ext = AUDIO_FORMATS[audio_format]
    buf = read_source(src)
    path = path_hint if path_hint is not None else (src if isinstance(src, str) else None)
    flac = _flac_streaminfo(buf.slice(0, 64).to_pybytes())
    if flac is not None and sf_format == "FLAC" and _suffix(path) in ("", "flac") and offset <= 0:
        sr, nframes = flac
        if nframes and (duration is None or nframes <= (duration + _TRIM_TOLERANCE) * sr):
            return Cut(buf, ext, copied=True)  # the trimmed clip itself: no libsndfile round trip
    data = buf.to_pybytes()
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        info = None
    # libsndfile's MP3 reader is not sample-aligned (encoder delay is kept): use PyAV for it
    if info is None or info.format in ("MP3", "MPEG"):
        return _cut_audio_pyav(data, offset, duration, sf_format, ext, path)
    sr, nframes = info.samplerate, info.frames
    start = max(0, int(round(offset * sr)))
    stop = nframes if duration is None else min(nframes, int(round((offset + duration) * sr)))
    trimmed = start == 0 and (duration is None or nframes <= (offset + duration + _TRIM_TOLERANCE) * sr)
    if trimmed and info.format == sf_format and _suffix(path) in ("", ext):
        return Cut(data, ext, copied=True)
    subtype, dtype = _sf_target_subtype(info.subtype, sf_format)
    with sf.SoundFile(io.BytesIO(data)) as f:
        f.seek(start)
        samples = f.read(max(0, stop - start), dtype=dtype, always_2d=True)
    return Cut(_write_sf(samples, sr, sf_format, subtype), ext, copied=False)


def _flac_streaminfo(data: bytes) -> tuple[int, int] | None:
    """(sample rate, total frames) from a FLAC file's STREAMINFO block, or None if ``data`` is not FLAC.

    Hand-parsed because it is 34 fixed bytes and the copy decision runs once per row: opening libsndfile
    for it costs more than copying a 10 s clip.
    """
    if len(data) < 42 or data[:4] != b"fLaC" or (data[4] & 0x7F) != 0:
        return None
    info = int.from_bytes(data[18:26], "big")  # bits: 20 sample rate, 3 channels-1, 5 bps-1, 36 total samples
    return info >> 44, info & ((1 << 36) - 1)


def _write_sf(samples: np.ndarray, sr: int, sf_format: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, sr, format=sf_format, subtype=subtype)
    return buf.getvalue()


def _decode_other(data: bytes, offset: float, duration: float | None, path: str | None) -> tuple[np.ndarray, int]:
    """Decode a segment that libsndfile cannot read (AAC, Opus, MP3...) to float32 ``(samples, channels)``.

    Delegates to ``avsets.media.decoding.decode_audio`` so the published samples are exactly what
    ``avsets.load_dataset`` decodes from the source (same pre-roll, AAC-priming and cut rules).
    """
    from avsets.media.decoding import decode_audio

    array, sr = decode_audio(path=path, data=data, offset=offset, duration=duration, mono=False)
    return np.ascontiguousarray(array.T), sr


def _cut_audio_pyav(data: bytes, offset: float, duration: float | None, sf_format: str, ext: str,
                    path: str | None) -> Cut:
    pcm, sr = _decode_other(data, offset, duration, path)
    subtype = "FLOAT" if sf_format == "WAV" else "PCM_24"
    return Cut(_write_sf(pcm, sr, sf_format, subtype), ext, copied=False)


# --------------------------------------------------------------------------------------------- video


def _video_is_trimmed_mp4(data: bytes, duration: float | None) -> bool:
    """True when ``data`` is an mp4 of H.264 (+ AAC) no longer than the segment: it can be copied."""
    try:
        with av.open(io.BytesIO(data)) as c:
            if "mp4" not in c.format.name.split(","):
                return False
            vs = c.streams.video
            if not vs or vs[0].codec_context.name != "h264":
                return False
            if any(a.codec_context.name != "aac" for a in c.streams.audio):
                return False
            if duration is None:
                return True
            length = (c.duration or 0) / av.time_base
            fps = float(vs[0].average_rate or 25)
            return length <= duration + 1.0 / fps
    except av.error.FFmpegError:
        return False


def _frames_in(c: av.container.InputContainer, st, start: float, stop: float) -> Iterator[av.VideoFrame]:
    if start > 0:
        c.seek(int(start / st.time_base), stream=st, backward=True, any_frame=False)
    for frame in c.decode(st):
        if frame.pts is None:
            continue
        t = float(frame.pts * frame.time_base)
        if t < start - 1e-9:
            continue
        if t >= stop:
            break
        yield frame


def cut_video(src: str | bytes, offset: float, duration: float | None, *, crf: int = 18,
              path_hint: str | None = None) -> Cut:
    """Return ``[offset, offset+duration)`` of ``src`` as mp4 H.264 + AAC bytes (copied when already so)."""
    buf = read_source(src)
    data = buf.to_pybytes()
    if offset <= 0 and _video_is_trimmed_mp4(data, duration):
        return Cut(buf, "mp4", copied=True)
    stop = math.inf if duration is None else offset + duration
    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as inp, av.open(out, mode="w", format="mp4") as dst:
        vin = inp.streams.video[0]
        rate = vin.average_rate or fractions.Fraction(25)
        vout = dst.add_stream("libx264", rate=rate)
        # H.264 in yuv420p needs even dimensions: drop an odd last row/column rather than fail
        width, height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.options = {"preset": "veryfast", "crf": str(crf)}
        tb = fractions.Fraction(1, int(round(float(rate) * 1000)))
        vout.time_base = tb
        # every stream must exist before the first packet is muxed (the header is written then)
        audio = _AacTrack(data, offset, duration, dst, path_hint) if inp.streams.audio else None
        for frame in _frames_in(inp, vin, offset, stop):
            t = float(frame.pts * frame.time_base) - offset
            new = frame.reformat(width=width, height=height, format="yuv420p")
            new.pts, new.time_base = int(round(max(0.0, t) / tb)), tb
            for pkt in vout.encode(new):
                dst.mux(pkt)
        for pkt in vout.encode():
            dst.mux(pkt)
        if audio is not None:
            audio.write()
    return Cut(out.getvalue(), "mp4", copied=False)


class _AacTrack:
    """The AAC track of a re-encoded clip: the stream is added at construction, packets on ``write``."""

    def __init__(self, data: bytes, offset: float, duration: float | None, dst: av.container.OutputContainer,
                 path: str | None):
        self.pcm, self.sr = _decode_other(data, offset, duration, path)
        channels = self.pcm.shape[1]
        self.layout = "mono" if channels == 1 else "stereo"
        self.dst = dst
        self.stream = dst.add_stream("aac", rate=self.sr, layout=self.layout)

    def write(self) -> None:
        hop = self.stream.codec_context.frame_size or 1024
        pcm = self.pcm[:, :1] if self.layout == "mono" else self.pcm[:, :2]
        planar = np.ascontiguousarray(pcm.T, dtype=np.float32)
        for s in range(0, planar.shape[1], hop):
            af = av.AudioFrame.from_ndarray(planar[:, s : s + hop], format="fltp", layout=self.layout)
            af.sample_rate, af.pts, af.time_base = self.sr, s, fractions.Fraction(1, self.sr)
            for pkt in self.stream.encode(af):
                self.dst.mux(pkt)
        for pkt in self.stream.encode():
            self.dst.mux(pkt)
