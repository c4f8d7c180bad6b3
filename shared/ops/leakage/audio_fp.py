"""Audio fingerprint: a Haitsma-Kalker band-energy bit fingerprint, and its offset-tolerant comparison.

Algorithm (J. Haitsma, T. Kalker, "A Highly Robust Audio Fingerprinting System", ISMIR 2002), with this
module's parameters:

1. mono audio at ``SAMPLING_RATE`` (5,512 Hz: everything above 2 kHz is thrown away anyway;
   :func:`to_fingerprint_rate` gets there cheaply);
2. frames of ``FRAME`` samples (0.37 s, Hann window) every ``HOP`` samples (23 ms, 94% overlap, so a copy
   that starts at any offset has frames at most 11.6 ms away from the original's; measured on real clips:
   a 46-ms hop made AAC re-encodes lose most bit-exact words, which the index needs);
3. the energy of ``BANDS + 1`` logarithmically spaced bands between 300 and 2,000 Hz (where re-encoding
   keeps the spectrum: AAC, Opus, MP3 and Vorbis at any usual bitrate leave it intact);
4. bit ``m`` of frame ``n``: ``E(n,m) - E(n,m+1) - (E(n-1,m) - E(n-1,m+1)) > 0``, a 32-bit sub-fingerprint
   per frame.  A volume change multiplies every energy by the same factor and flips no bit; resampling
   and codecs flip few.  Frames quieter than ``SILENCE_RMS`` get the value 0 ("no information") and are
   left out of comparisons and of the index.

Two fingerprints compare by their bit error rate (BER) at the best alignment within ``max_shift_s``
(offsets up to 1 s): 0 for the same audio, about 0.5 for unrelated audio.  Haitsma and Kalker call two
excerpts the same below 0.35; :data:`MATCH_BER` is stricter because we compare whole clips.
"""

from __future__ import annotations

import functools

import numpy as np

from avsets.media.decoding import resample

SAMPLING_RATE = 5512
FRAME = 2048
HOP = 128
BANDS = 32
F_LO, F_HI = 300.0, 2000.0
SILENCE_RMS = 1e-4  # -80 dBFS
MATCH_BER = 0.30
#: seconds per sub-fingerprint
STEP_S = HOP / SAMPLING_RATE


def _band_starts() -> np.ndarray:
    """First FFT bin of each of the ``BANDS + 1`` log-spaced bands, and the end of the last (contiguous)."""
    edges = np.geomspace(F_LO, F_HI, BANDS + 2)
    return np.searchsorted(np.fft.rfftfreq(FRAME, 1.0 / SAMPLING_RATE), edges)


_EDGES = _band_starts()
_WINDOW = np.hanning(FRAME)  # float64: NumPy's FFT is 3x faster in double than in single precision
_WEIGHTS = (np.uint32(1) << np.arange(BANDS - 1, -1, -1, dtype=np.uint32)).astype(np.uint32)
#: frames windowed and transformed at a time.  Why: the windowed frames and their spectra of 64 frames
#: (1 MB each) stay in the CPU cache; a 6-s clip's all at once (258 frames, 4 MB each) do not, and the
#: band energies cost 3.4x more CPU that way (13.6 vs 46 ms for 6 clips; the same values bit for bit)
_CHUNK = 64


#: the 44.1-kHz family reaches 5,512.5 Hz by keeping every q-th sample of a low-passed signal
_DECIMATE_TAPS = 48


@functools.lru_cache(maxsize=8)
def _lowpass(q: int) -> np.ndarray:
    """Hamming-windowed sinc low-pass at 0.9 x the Nyquist frequency of the rate ``1/q`` of the input."""
    n = np.arange(_DECIMATE_TAPS) - (_DECIMATE_TAPS - 1) / 2
    cutoff = 0.45 / q  # cycles per input sample
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(_DECIMATE_TAPS)
    return h / h.sum()


def to_fingerprint_rate(samples: np.ndarray, sr: int) -> np.ndarray:
    """Mono audio at ``sr`` -> float64 at :data:`SAMPLING_RATE`.

    44,100 Hz (YouTube's AAC) and its divisors: a 48-tap low-pass evaluated only at every q-th sample
    (5,512.5 Hz; the 0.009% rate difference moves a 10-s clip by 0.9 ms): about 3x cheaper than FFmpeg's
    swresample (a ``bench/bench_leakage.py`` row), with fingerprints 0.4% of bits apart.  Other rates (Opus' 48 kHz): swresample
    through ``avsets.media.decoding.resample``.
    """
    x = np.asarray(samples)
    if sr == SAMPLING_RATE:
        return x.astype(np.float64, copy=False)
    if sr % 11025 == 0 and sr >= 11025:
        return _decimate(x, sr * 2 // 11025)
    return resample(np.asarray(x, np.float32)[None], sr, SAMPLING_RATE)[0].astype(np.float64)


def _decimate(x: np.ndarray, q: int) -> np.ndarray:
    """``y[i] = sum_t h[t] x[q i + t]`` for every ``i`` whose taps lie inside ``x`` (``h``: :func:`_lowpass`).

    Polyphase: ``x`` seen as rows of ``q`` samples, each block of ``q`` taps is one matrix-vector product
    over contiguous rows (6 products for 44.1 kHz).  Why: the same sums as a strided sliding-window product
    to 1e-16, 4x cheaper (that product's strided rows made BLAS copy the window matrix).
    """
    h = _lowpass(q)
    n = (x.size - h.size) // q + 1
    if n <= 0:
        return np.zeros(0, np.float64)
    m = -(-h.size // q)  # taps per phase row, padded with zero taps to a whole row
    taps = np.zeros(m * q, np.float64)
    taps[:h.size] = h
    rows = n + m - 1
    flat = np.zeros(rows * q, np.float64)
    got = min(x.size, flat.size)
    flat[:got] = x[:got]
    grid, phases = flat.reshape(rows, q), taps.reshape(m, q)
    y = grid[:n] @ phases[0]
    for j in range(1, m):
        y += grid[j:j + n] @ phases[j]
    return y


def audio_fingerprint(samples: np.ndarray) -> np.ndarray:
    """The uint32 sub-fingerprints of mono float audio at :data:`SAMPLING_RATE` (empty if shorter than a frame)."""
    x = np.asarray(samples, np.float64)
    if x.ndim != 1:
        raise ValueError("audio_fingerprint takes mono samples (1-D)")
    if x.size < FRAME + HOP:
        return np.zeros(0, np.uint32)
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP]
    energy_sum = np.concatenate([[0.0], np.cumsum(x * x)])  # every frame's energy from one running sum
    starts = np.arange(frames.shape[0]) * HOP
    rms = np.sqrt(np.maximum(energy_sum[starts + FRAME] - energy_sum[starts], 0.0) / FRAME)
    energy = np.empty((frames.shape[0], BANDS + 1))  # (frames, BANDS + 1)
    for i in range(0, frames.shape[0], _CHUNK):
        spec = np.fft.rfft(frames[i:i + _CHUNK] * _WINDOW, axis=1)[:, _EDGES[0]:_EDGES[-1]]
        power = spec.real ** 2 + spec.imag ** 2
        energy[i:i + _CHUNK] = np.add.reduceat(power, _EDGES[:-1] - _EDGES[0], axis=1)
    d = energy[:, :-1] - energy[:, 1:]
    bits = (d[1:] - d[:-1]) > 0
    words = (bits.astype(np.uint32) * _WEIGHTS).sum(axis=1, dtype=np.uint64).astype(np.uint32)
    words[(rms[1:] < SILENCE_RMS) | (rms[:-1] < SILENCE_RMS)] = 0
    return words


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def best_alignment(a: np.ndarray, b: np.ndarray, max_shift: int, min_overlap: int, bits: int) -> tuple[float, int]:
    """``(error rate, shift)`` of the best alignment of two word sequences; 0 words carry no information.

    ``shift`` is how many words ``b`` starts after ``a``.  Returns ``(1.0, 0)`` when no alignment leaves
    ``min_overlap`` informative words on both sides.
    """
    best, best_shift = 1.0, 0
    na, nb = a.size, b.size
    for s in range(-max_shift, max_shift + 1):
        # a[i] against b[i - s]
        lo, hi = max(0, s), min(na, nb + s)
        if hi - lo < min_overlap:
            continue
        x, y = a[lo:hi], b[lo - s:hi - s]
        ok = (x != 0) & (y != 0)
        n = int(ok.sum())
        if n < min_overlap:
            continue
        rate = float(_popcount(x[ok] ^ y[ok]).sum()) / (n * bits)
        if rate < best:
            best, best_shift = rate, s
    return best, best_shift


def compare_audio(a: np.ndarray, b: np.ndarray, max_shift_s: float = 1.0, min_overlap_s: float = 2.0) -> float:
    """Bit error rate of two audio fingerprints at their best alignment within ``max_shift_s``."""
    return best_alignment(a, b, int(round(max_shift_s / STEP_S)), max(1, int(min_overlap_s / STEP_S)), 32)[0]
