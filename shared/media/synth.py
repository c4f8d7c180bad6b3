"""Synthetic media with known content, for the demo, the tests and the benchmarks.

Audio is a tone whose phase encodes absolute time, so any cut can be checked sample by sample against
:func:`tone`; video frames carry their index in a gray band (``band value = index % 256``), so any cut can be
checked frame by frame.  Encoded with PyAV (H.264 + AAC) and soundfile (WAV/FLAC/OGG) only.
"""

from __future__ import annotations

import fractions
import os

import av
import numpy as np
import soundfile as sf


def tone(seconds: float, sr: int = 16000, freq: float = 440.0, channels: int = 1, start: float = 0.0) -> np.ndarray:
    """``(samples, channels)`` float32: a sine whose sample ``i`` is at absolute time ``start + i / sr``.

    The amplitude ramps slowly with time, so two cuts at different offsets never look alike.
    """
    t = start + np.arange(int(round(seconds * sr))) / sr
    amp = 0.25 + 0.2 * np.sin(2 * np.pi * 0.05 * t)
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x * (1.0 if c == 0 else -0.5) for c in range(channels)], axis=1)


def write_audio(path: str | os.PathLike, seconds: float = 10.0, sr: int = 16000, channels: int = 1,
                subtype: str | None = None, start: float = 0.0) -> np.ndarray:
    """Write a tone file (format from the extension); return the samples written."""
    data = tone(seconds, sr, channels=channels, start=start)
    ext = os.fspath(path).rsplit(".", 1)[-1].lower()
    if subtype is None:
        subtype = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}.get(ext)
    sf.write(os.fspath(path), data, sr, subtype=subtype)
    return data


def write_video(path: str | os.PathLike, seconds: float = 10.0, fps: int = 25, size: tuple[int, int] = (64, 48),
                sr: int = 16000, audio: bool = True, gop: int | None = None, channels: int = 1) -> None:
    """Write an H.264 (+ AAC) mp4 whose frame ``i`` carries ``i`` in binary in its top 8 rows.

    The band holds ``BAND_BITS`` black/white blocks (bit k of the index), which survive lossy coding, so
    :func:`frame_band` reads the exact index back (mod ``2 ** BAND_BITS``).
    """
    w, h = size
    n_frames = int(round(seconds * fps))
    layout = "mono" if channels == 1 else "stereo"
    with av.open(os.fspath(path), mode="w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "ultrafast", "g": str(gop or fps), "crf": "18"}
        as_ = c.add_stream("aac", rate=sr, layout=layout) if audio else None
        img = np.zeros((h, w, 3), np.uint8)
        for i in range(n_frames):
            img[:] = 0
            _paint_band(img, i)
            x = int((i * 3) % max(1, w - 8))
            img[h // 2 - 4:h // 2 + 4, x:x + 8] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = fractions.Fraction(1, fps)
            for pkt in vs.encode(frame):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
        if as_ is not None:
            data = tone(seconds, sr, channels=channels).T
            hop = as_.codec_context.frame_size or 1024
            for s in range(0, data.shape[1], hop):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, s:s + hop]), format="fltp", layout=layout)
                af.sample_rate = sr
                af.pts = s
                af.time_base = fractions.Fraction(1, sr)
                for pkt in as_.encode(af):
                    c.mux(pkt)
            for pkt in as_.encode():
                c.mux(pkt)


BAND_BITS = 8


def _paint_band(img: np.ndarray, index: int) -> None:
    w = img.shape[1]
    block = w // BAND_BITS
    for k in range(BAND_BITS):
        if (index >> k) & 1:
            img[:8, k * block:(k + 1) * block, :] = 255


def frame_band(frame: np.ndarray) -> int:
    """The frame index written by :func:`write_video` (mod ``2 ** BAND_BITS``), read back from RGB."""
    w = frame.shape[1]
    block = w // BAND_BITS
    value = 0
    for k in range(BAND_BITS):
        cell = frame[1:7, k * block + 1:(k + 1) * block - 1, :]
        if float(cell.mean()) > 127.5:
            value |= 1 << k
    return value
