"""Near-duplicate search without all pairs: exact-key buckets over fingerprint words, then verification.

Keys (an LSH over bit fingerprints):

* audio: every informative 32-bit sub-fingerprint whose hash falls in a fixed 1/``AUDIO_SAMPLE`` of the hash
  space.  The sample depends on the word's value only, so a word two copies share is kept in both (a
  per-clip "bottom-k" sample would keep it in one and not the other); a re-encoded or shifted copy keeps
  about 10% of its words bit-exact, i.e. several keys per clip;
* video: each informative 64-bit frame hash split into two 32-bit bands (a frame hash with two flipped bits
  keeps a band intact half the time; forty frames make a miss unlikely).

Two clips become a candidate when they share at least ``min_shared`` keys of one modality; buckets holding
more than ``max_bucket`` clips (words every clip has: tones, silence-like noise) are skipped as stop words.
Candidates are then verified by the offset-tolerant comparisons of ``audio_fp``/``video_fp``.  Every step
before verification is NumPy sorting and grouping, so the work grows with the number of keys (linear in
clips) plus the number of candidates, never with the square of the clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import audio_fp, video_fp

AUDIO_SAMPLE = 4
MIX = np.uint64(0x9E3779B97F4A7C15)


def audio_keys(words: np.ndarray) -> np.ndarray:
    """The index keys of one audio fingerprint (unique uint64)."""
    w = np.unique(words[words != 0]).astype(np.uint64)
    h = (w * MIX) >> np.uint64(32)
    return w[(h % np.uint64(AUDIO_SAMPLE)) == 0]


def video_keys(hashes: np.ndarray) -> np.ndarray:
    """The index keys of one video fingerprint: (band << 32) | 32-bit band value, unique."""
    h = hashes[hashes != 0].astype(np.uint64)
    hi = h >> np.uint64(32)
    lo = (h & np.uint64(0xFFFFFFFF)) | (np.uint64(1) << np.uint64(32))
    return np.unique(np.concatenate([hi, lo]))


def _flatten(keys: Sequence[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.array([0 if k is None else k.size for k in keys], np.int64)
    owner = np.repeat(np.arange(len(keys), dtype=np.int64), sizes)
    flat = np.concatenate([k for k in keys if k is not None and k.size]) if sizes.sum() else np.zeros(0, np.uint64)
    return owner, flat.astype(np.uint64)


def candidate_pairs(keys: Sequence[np.ndarray | None], *, min_shared: int = 2, max_bucket: int = 64
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(i, j)`` arrays (i < j) of clips sharing at least ``min_shared`` keys (each clip's keys unique)."""
    owner, flat = _flatten(keys)
    if flat.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(flat, kind="stable")
    flat, owner = flat[order], owner[order]
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    sizes = np.diff(np.r_[starts, flat.size])
    codes = []
    for s in np.unique(sizes):
        if s < 2 or s > max_bucket:
            continue
        st = starts[sizes == s]
        members = owner[st[:, None] + np.arange(s)]  # (groups, s), owners ascending within a group
        iu, ju = np.triu_indices(int(s), 1)
        a, b = members[:, iu].ravel(), members[:, ju].ravel()
        codes.append((np.minimum(a, b).astype(np.uint64) << np.uint64(32)) | np.maximum(a, b).astype(np.uint64))
    if not codes:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    code, count = np.unique(np.concatenate(codes), return_counts=True)
    code = code[count >= min_shared]
    return (code >> np.uint64(32)).astype(np.int64), (code & np.uint64(0xFFFFFFFF)).astype(np.int64)


def error_rate(a: np.ndarray, b: np.ndarray, max_shift: int, min_overlap: int, bits: int) -> float:
    """Lowest bit error rate of ``a[i]`` vs ``b[i - s]`` over shifts ``|s| <= max_shift`` (all shifts at once)."""
    na = a.size
    pad = np.zeros(max_shift, b.dtype)
    tail = np.zeros(max_shift + max(0, na - b.size), b.dtype)
    bp = np.concatenate([pad, b, tail])
    win = np.lib.stride_tricks.sliding_window_view(bp, na)[: 2 * max_shift + 1]
    valid = (a != 0)[None, :] & (win != 0)
    errors = np.where(valid, np.bitwise_count(a[None, :] ^ win), 0).sum(axis=1)
    n = valid.sum(axis=1)
    ok = n >= min_overlap
    if not ok.any():
        return 1.0
    return float((errors[ok] / (n[ok] * bits)).min())


@dataclass
class Match:
    """A verified near-duplicate pair of clips (indices into the fingerprint table)."""

    i: int
    j: int
    kind: str  # "audio", "video" or "both"
    score: float  # 1 = identical, 0 = unrelated (1 - 2 x error rate; mean of both modalities for "both")
    audio_ber: float | None
    video_dist: float | None


def find_duplicates(audio: Sequence[np.ndarray | None], video: Sequence[np.ndarray | None], *,
                    audio_ber: float = audio_fp.MATCH_BER, video_dist: float = video_fp.MATCH_DISTANCE,
                    max_shift_s: float = 1.0, min_shared: int = 2, max_bucket: int = 64
                    ) -> tuple[list[Match], int]:
    """Verified pairs among all clips (``i < j``), and how many candidates the index gave.

    A pair matches in a modality when its error rate at the best alignment within ``max_shift_s`` is at most
    ``audio_ber`` (audio) or ``video_dist`` (video); ``kind`` says which modalities matched.
    """
    ai, aj = candidate_pairs([None if a is None else audio_keys(a) for a in audio], min_shared=min_shared,
                             max_bucket=max_bucket)
    vi, vj = candidate_pairs([None if v is None else video_keys(v) for v in video], min_shared=min_shared,
                             max_bucket=max_bucket)
    code = np.unique(np.concatenate([(ai.astype(np.uint64) << np.uint64(32)) | aj.astype(np.uint64),
                                     (vi.astype(np.uint64) << np.uint64(32)) | vj.astype(np.uint64)]))
    a_shift = int(round(max_shift_s / audio_fp.STEP_S))
    a_min = int(2.0 / audio_fp.STEP_S)
    v_shift = int(round(max_shift_s * video_fp.FPS))
    v_min = int(1.0 * video_fp.FPS)
    out: list[Match] = []
    for c in code.tolist():
        i, j = c >> 32, c & 0xFFFFFFFF
        ab = vd = None
        if audio[i] is not None and audio[j] is not None:
            ab = error_rate(audio[i], audio[j], a_shift, a_min, 32)
        if video[i] is not None and video[j] is not None:
            vd = error_rate(video[i], video[j], v_shift, v_min, 64)
        a_ok = ab is not None and ab <= audio_ber
        v_ok = vd is not None and vd <= video_dist
        if not (a_ok or v_ok):
            continue
        kind = "both" if a_ok and v_ok else "audio" if a_ok else "video"
        sims = [1.0 - 2.0 * x for x, ok in ((ab, a_ok), (vd, v_ok)) if ok]
        out.append(Match(i, j, kind, round(max(0.0, sum(sims) / len(sims)), 4), ab, vd))
    return out, int(code.size)
