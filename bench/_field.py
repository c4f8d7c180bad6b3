"""Clips and measurements of the field benchmark's video and audio rows (issue 13): avsets vs torchcodec.

Clips look like what YouTube serves and datasets hold: H.264 with B-frames (x264 ``veryfast``), keyframes
every 2 s or 7 s, moving textured content (noise rolled sideways, so motion search and residuals are real);
a VP9 WebM (libvpx, keyframe every 5 s); AAC ``.m4a`` and Opus ``.webm`` audio. They are encoded once and
cached (``_perf.cached``). Timing: process CPU time, fastest of alternating runs (``_perf.paired``).
"""

from __future__ import annotations

import fractions
import os
import resource
import shutil
import subprocess
import time
from collections.abc import Callable

import av
import numpy as np
from _common import Seconds
from _perf import Timing, cached, paired

# (width, height, seconds of the clips, seconds of the long VP9 video, where its segment starts, repeats)
SIZES = {
    "smoke": {"360p": (160, 90), "720p": (320, 180), "clip_s": 2.0, "long_s": 20.0, "seg_at": 12.0, "repeat": 2},
    "default": {"360p": (640, 360), "720p": (1280, 720), "clip_s": 10.0, "long_s": 250.0, "seg_at": 240.0,
                "repeat": 5},
    "full": {"360p": (640, 360), "720p": (1280, 720), "clip_s": 10.0, "long_s": 250.0, "seg_at": 240.0,
             "repeat": 9},
}


def _frames(w: int, h: int, n: int):
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    for i in range(n):
        img = np.roll(noise, i * 2, axis=1)
        img[: h // 8, : w // 4] = (i * 5) % 256
        yield np.ascontiguousarray(img)


def write_h264(path: str, w: int, h: int, fps: int, seconds: float, gop_s: float) -> None:
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        g = str(int(gop_s * fps))
        s.options = {"preset": "veryfast", "g": g, "keyint_min": g, "crf": "23", "sc_threshold": "0"}
        for i, img in enumerate(_frames(w, h, int(seconds * fps))):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, fractions.Fraction(1, fps)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def write_vp9(path: str, w: int, h: int, fps: int, seconds: float, gop_s: float) -> None:
    with av.open(path, "w", format="webm") as c:
        s = c.add_stream("libvpx-vp9", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"deadline": "realtime", "cpu-used": "8", "g": str(int(gop_s * fps)), "crf": "32", "b": "0",
                     "row-mt": "1"}
        for i, img in enumerate(_frames(w, h, int(seconds * fps))):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, fractions.Fraction(1, fps)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def write_audio(path: str, codec: str, sr: int, seconds: float, fmt: str | None = None) -> None:
    from avsets.media.synth import tone

    with av.open(path, "w", format=fmt) as c:
        s = c.add_stream(codec, rate=sr, layout="stereo")
        m = tone(seconds, sr)[:, 0] * 0.5
        data = np.stack([m, m[::-1].copy()]).astype(np.float32)
        hop = s.codec_context.frame_size or 1024
        for p0 in range(0, data.shape[1], hop):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, p0:p0 + hop]), format="fltp", layout="stereo")
            f.sample_rate, f.pts, f.time_base = sr, p0, fractions.Fraction(1, sr)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def clips(size: str) -> dict[str, str]:
    """Every clip of the field rows, encoded once per size and cached."""
    cfg = SIZES[size]
    out = {}
    for res in ("360p", "720p"):
        w, h = cfg[res]
        fps = 25 if res == "360p" else 30
        for gop in (2, 7):
            out[f"{res}-g{gop}"] = cached(f"field-h264-{w}x{h}-{fps}-{cfg['clip_s']:g}s-g{gop}.mp4",
                                          lambda p, w=w, h=h, fps=fps, gop=gop: write_h264(p, w, h, fps,
                                                                                          cfg["clip_s"], gop))
    w, h = cfg["360p"]
    out["vp9"] = cached(f"field-vp9-{w}x{h}-{cfg['long_s']:g}s.webm",
                        lambda p: write_vp9(p, w, h, 25, cfg["long_s"], 5.0))
    out["m4a"] = cached(f"field-aac-{cfg['clip_s']:g}s.m4a",
                        lambda p: write_audio(p, "aac", 44100, cfg["clip_s"], fmt="ipod"))
    out["webm"] = cached(f"field-opus-{cfg['clip_s']:g}s.webm",
                         lambda p: write_audio(p, "libopus", 48000, cfg["clip_s"], fmt="webm"))
    return out


# ------------------------------------------------------------------------------------ torchcodec side


def tc_frames(path: str, seconds: list[float] | None, start: float = 0.0, stop: float | None = None) -> np.ndarray:
    """torchcodec: the frames shown at ``seconds``, or every frame in ``[start, stop)``; NHWC uint8."""
    from torchcodec.decoders import VideoDecoder

    dec = VideoDecoder(path)
    if seconds is not None:
        batch = dec.get_frames_played_at(seconds=seconds)
    else:
        batch = dec.get_frames_played_in_range(start, stop if stop is not None else dec.metadata.duration_seconds)
    return batch.data.permute(0, 2, 3, 1).numpy()


def tc_audio(path: str, start: float | None = None, stop: float | None = None) -> np.ndarray:
    from torchcodec.decoders import AudioDecoder

    dec = AudioDecoder(path)
    if start is None:
        return dec.get_all_samples().data.numpy()
    return dec.get_samples_played_in_range(start, stop).data.numpy()


def _cpu(t: dict[str, Timing]) -> dict[str, float]:
    """Best and median CPU seconds of both sides, as plain floats (the child hands them over as JSON)."""
    return {"ours_cpu": float(t["ours"].cpu), "base_cpu": float(t["base"].cpu),
            "ours_cpu_median": t["ours"].cpu.median, "base_cpu_median": t["base"].cpu.median}


def video_rows(size: str, paths: dict[str, str]) -> dict[str, dict]:
    """``{row: {ours_cpu, base_cpu, identical}}`` for the video rows (run where torchcodec imports)."""
    from avsets.media.decoding import decode_video

    cfg = SIZES[size]
    rep = cfg["repeat"]
    d = cfg["clip_s"]
    out: dict[str, dict] = {}

    def row(name: str, ours: Callable[[], np.ndarray], base: Callable[[], np.ndarray]) -> None:
        a, b = ours(), base()
        same = a.shape == b.shape and bool(np.array_equal(a, b))
        t = paired({"ours": ours, "base": base}, rep)
        out[name] = {**_cpu(t), "identical": same}

    for key in ("360p-g2", "360p-g7", "720p-g2", "720p-g7"):
        p = paths[key]
        picked = decode_video(p, offset=0.0, duration=d, num_frames=8).timestamps
        secs = [float(s) + 1e-4 for s in picked]  # torchcodec's exact mode wants a hair past a frame's time
        row(f"8 frames {key}", lambda p=p: decode_video(p, offset=0.0, duration=d, num_frames=8).frames,
            lambda p=p, secs=secs: tc_frames(p, secs))
        row(f"all frames {key}", lambda p=p: decode_video(p, offset=0.0, duration=d).frames,
            lambda p=p: tc_frames(p, None, 0.0, d))
    at = cfg["seg_at"]
    p = paths["vp9"]
    picked = decode_video(p, offset=at, duration=10.0, num_frames=8).timestamps
    secs = [at + float(s) + 1e-4 for s in picked]
    row("8 frames vp9@seg", lambda: decode_video(p, offset=at, duration=10.0, num_frames=8).frames,
        lambda: tc_frames(p, secs))
    return out


def datasets_rows(size: str, paths: dict[str, str], n_rows: int = 8) -> dict[str, dict]:
    """8 frames per row through ``datasets``: stock ``Video()`` (torchcodec) vs ``avsets.decode``."""
    import datasets

    import avsets

    cfg = SIZES[size]
    src = paths["720p-g2"]
    storage = datasets.Dataset.from_dict({"video": [src] * n_rows}).cast_column("video", datasets.Video(decode=False))
    stock = storage.cast_column("video", datasets.Video())
    ours = avsets.decode(storage, num_frames=8)

    def read_stock() -> None:
        for row in stock:
            dec = row["video"]
            n = len(dec)
            idx = [int(round(x)) for x in np.linspace(0, n - 1, 8)]
            dec.get_frames_at(indices=idx).data.numpy()

    def read_ours() -> None:
        for row in ours:
            row["video"]["frames"]

    t = paired({"ours": read_ours, "base": read_stock}, max(2, cfg["repeat"] - 2))
    return {f"datasets {n_rows} rows x 8 frames 720p-g2": {**_cpu(t), "identical": None}}


def audio_rows(size: str, paths: dict[str, str]) -> dict[str, dict]:
    from avsets.media.decoding import decode_audio

    rep = SIZES[size]["repeat"] * 3
    out: dict[str, dict] = {}
    for key in ("m4a", "webm"):
        p = paths[key]
        a, b = decode_audio(p, mono=False)[0], tc_audio(p)
        t = paired({"ours": lambda p=p: decode_audio(p, mono=False), "base": lambda p=p: tc_audio(p)}, rep)
        same = a.shape == b.shape and float(np.max(np.abs(a - b))) < 1e-4
        out[f"whole {key}"] = {**_cpu(t), "identical": same}
    return out


# ------------------------------------------------------------------------------------ ffmpeg CLI side


def ffmpeg_exe() -> str | None:
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


def ffmpeg_cli_rows(size: str, paths: dict[str, str]) -> dict[str, dict]:
    """All frames to rawvideo rgb24 with ``ffmpeg -threads 1`` (the child's CPU time) vs ``decode_video``."""
    from avsets.media.decoding import decode_video

    exe = ffmpeg_exe()
    if exe is None:
        return {}
    cfg = SIZES[size]
    d = cfg["clip_s"]
    out: dict[str, dict] = {}
    for key in ("360p-g2", "720p-g2"):
        p = paths[key]

        def cli(p: str = p) -> float:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([exe, "-v", "error", "-threads", "1", "-i", p, "-t", str(d), "-f", "rawvideo",
                            "-pix_fmt", "rgb24", "-y", os.devnull], check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

        def ours(p: str = p) -> float:
            c0 = time.process_time()
            decode_video(p, offset=0.0, duration=d)
            return time.process_time() - c0

        cli()
        ours()
        runs_ours, runs_cli = [], []
        for _ in range(cfg["repeat"]):
            runs_ours.append(ours())
            runs_cli.append(cli())
        t = {"ours": Timing(Seconds(runs_ours), Seconds(runs_ours)), "base": Timing(Seconds(runs_cli), Seconds(runs_cli))}
        out[f"all frames {key} vs ffmpeg CLI"] = {**_cpu(t), "identical": None}
    return out
