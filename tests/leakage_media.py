"""Re-uploads made from real media with PyAV, for the leakage tests and benchmark.

``transcode`` cuts ``[start, start + seconds)`` of a real file and writes it again with another codec,
container, size, bitrate or volume: what a re-upload of the same video under another YouTube id looks like.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = os.path.join(HERE, "data", "real", "leakage")

#: codec -> (PyAV encoder, pixel/sample format, options)
VIDEO = {"h264": ("libx264", "yuv420p", {"preset": "ultrafast", "crf": "28"}),
         "vp9": ("libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0"})}
AUDIO = {"aac": ("aac", "fltp", 64_000), "opus": ("libopus", "flt", 48_000), "flac": ("flac", "s16", None)}


def real_clip(name: str) -> str:
    return os.path.join(REAL, name)


def _decoded(src: str, start: float, seconds: float):
    """(frames as RGB arrays, fps) and (mono-or-stereo float audio (C, N), rate) of the cut."""
    frames, audio, fps, rate = [], [], 25.0, 48_000
    with av.open(src) as c:
        if c.streams.video:
            vs = c.streams.video[0]
            fps = float(vs.average_rate or 25)
            for f in c.decode(vs):
                t = float(f.time)
                if start <= t < start + seconds:
                    frames.append(f.to_ndarray(format="rgb24"))
    with av.open(src) as c:
        if c.streams.audio:
            st = c.streams.audio[0]
            rate = st.codec_context.sample_rate
            res = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
            for f in c.decode(st):
                for g in res.resample(f):
                    audio.append((float(g.time or 0.0), g.to_ndarray()))
    pcm = None
    if audio:
        pcm = np.concatenate([a for _, a in audio], axis=1)
        first = audio[0][0]
        i0 = max(0, int(round((start - first) * rate)))
        pcm = pcm[:, i0:i0 + int(round(seconds * rate))]
    return frames, fps, pcm, rate


def transcode(src: str, dst: str, *, start: float = 0.0, seconds: float = 5.0, vcodec: str | None = "h264",
              acodec: str | None = "aac", size: tuple[int, int] | None = None, gain_db: float = 0.0,
              fps: float | None = None, video_options: dict | None = None) -> str:
    """Write ``[start, start + seconds)`` of ``src`` to ``dst`` (container from the extension)."""
    frames, src_fps, pcm, rate = _decoded(src, start, seconds)
    with av.open(dst, "w") as out:
        vs = as_ = None
        if vcodec and frames:
            enc, pix, opts = VIDEO[vcodec]
            rate_v = Fraction(fps or src_fps).limit_denominator(1001)
            vs = out.add_stream(enc, rate=rate_v)
            h, w = frames[0].shape[:2]
            tw, th = size if size else (w, h)
            vs.width, vs.height, vs.pix_fmt = tw - tw % 2, th - th % 2, pix
            vs.options = {**opts, **(video_options or {})}
        if acodec and pcm is not None:
            enc, fmt, bitrate = AUDIO[acodec]
            out_rate = 48_000 if acodec == "opus" else rate
            as_ = out.add_stream(enc, rate=out_rate)
            as_.layout = "stereo"
            if bitrate:
                as_.bit_rate = bitrate
        if vs is not None:
            for i, arr in enumerate(frames):
                f = av.VideoFrame.from_ndarray(arr, format="rgb24")
                if (f.width, f.height) != (vs.width, vs.height):
                    f = f.reformat(width=vs.width, height=vs.height)
                f.pts = i
                for p in vs.encode(f):
                    out.mux(p)
            for p in vs.encode():
                out.mux(p)
        if as_ is not None:
            x = pcm * (10.0 ** (gain_db / 20.0))
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x, np.float32), format="fltp", layout="stereo")
            frame.sample_rate = rate
            frame.pts = None
            res = av.AudioResampler(format=AUDIO[acodec][1], layout="stereo", rate=as_.codec_context.sample_rate,
                                    frame_size=as_.codec_context.frame_size or None)
            for g in res.resample(frame) + res.resample(None):
                for p in as_.encode(g):
                    out.mux(p)
            for p in as_.encode():
                out.mux(p)
    return dst
