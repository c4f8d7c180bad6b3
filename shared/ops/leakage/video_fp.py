"""Video fingerprint: a DCT perceptual hash (pHash) of small grayscale frames sampled at ``FPS``.

pHash as ``imagehash.phash`` defines it (grayscale, 32x32, 2-D DCT-II, the 8x8 lowest frequencies, each bit
"coefficient above their median"), computed here on all frames at once with two matrix products, so a clip
costs no per-frame Python image work; ``tests/test_leakage_fingerprint.py`` checks the bits against
``imagehash`` on the same images.  Frames come from avsets' own decoder scaled by FFmpeg to 32x32
(``decode_video(..., fps=FPS, size=(32, 32))``), so resizing the video changes almost nothing, and re-encoding
changes a few bits.  Frames at ``FPS`` (4 a second) are at most 0.125 s from the frames of a copy shifted by
any offset.  A flat frame (black, one colour: no structure above the DC term) gets the value 0
("no information"), because every flat frame of every video would otherwise match every other.

Two fingerprints compare by the mean Hamming distance / 64 of aligned frames at the best shift within
``max_shift_s``: about 0 for the same pictures, about 0.5 for unrelated ones.
"""

from __future__ import annotations

import numpy as np

from .audio_fp import best_alignment

FPS = 4.0
SIZE = 32
HASH = 8
MATCH_DISTANCE = 0.22
FLAT_AC = 1.0  # mean |AC coefficient| of the 8x8 block below which a frame is flat (0-255 pixels)

_N = np.arange(SIZE)
#: unnormalised DCT-II matrix (scipy.fftpack.dct's type 2 without its factor 2, which no median test sees)
_C = np.cos(np.pi * (2 * _N[None, :] + 1) * np.arange(HASH)[:, None] / (2 * SIZE))
_WEIGHTS = (np.uint64(1) << np.arange(HASH * HASH - 1, -1, -1, dtype=np.uint64)).astype(np.uint64)


def gray(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB -> ``(T, H, W)`` float luma, as PIL's ``convert("L")`` weighs it."""
    f = frames.astype(np.float32)
    return f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114


def phash_frames(luma: np.ndarray) -> np.ndarray:
    """pHash of each ``(SIZE, SIZE)`` grayscale frame as uint64 (first bit = top-left coefficient)."""
    x = np.asarray(luma, np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"phash_frames takes {SIZE}x{SIZE} frames, not {x.shape[1:]}")
    low = _C @ x @ _C.T  # (T, 8, 8): the 8x8 lowest frequencies of each frame's DCT
    flat = low.reshape(len(low), -1)
    med = np.median(flat, axis=1, keepdims=True)
    words = ((flat > med).astype(np.uint64) * _WEIGHTS).sum(axis=1, dtype=np.uint64)
    ac = np.abs(flat[:, 1:]).mean(axis=1) / (SIZE * SIZE / 4)
    words[ac < FLAT_AC] = 0
    return words


def video_fingerprint(frames: np.ndarray) -> np.ndarray:
    """uint64 per frame of ``(T, SIZE, SIZE, 3)`` RGB frames (what ``decode_video(size=(32, 32))`` gives)."""
    if len(frames) == 0:
        return np.zeros(0, np.uint64)
    return phash_frames(gray(frames))


def compare_video(a: np.ndarray, b: np.ndarray, max_shift_s: float = 1.0, min_overlap_s: float = 1.0) -> float:
    """Mean Hamming distance / 64 of two video fingerprints at their best alignment within ``max_shift_s``."""
    return best_alignment(a, b, int(round(max_shift_s * FPS)), max(1, int(min_overlap_s * FPS)), 64)[0]
