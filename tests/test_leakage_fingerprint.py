"""The fingerprints against reference implementations: video pHash bit for bit against ``imagehash``
(the ``test`` extra), audio decisions against Chromaprint's ``fpcalc`` (Debian ``libchromaprint-tools``;
skipped, saying so, where it is not installed), and the robustness properties on real clips."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile
from leakage_media import real_clip, transcode
from PIL import Image

from avsets.core.errors import MissingStreamError
from avsets.media.decoding import decode_audio, decode_video
from avsets.ops.leakage import audio_fp, video_fp
from avsets.ops.leakage.index import (
    Packed,
    audio_keys,
    candidate_pairs,
    error_rate,
    find_duplicates,
    video_keys,
)

imagehash = pytest.importorskip("imagehash", reason="imagehash is the reference pHash (pip install -e '.[test]')")

CLIPS = ["bbb_00.mp4", "bbb_12.mp4", "bbb_24.mp4", "chaplin_00.mp4", "smpte_00.mp4", "vwfa_00.mp4"]


def _bits(words: np.ndarray) -> np.ndarray:
    return np.unpackbits(words.astype(">u8").view(np.uint8)).reshape(len(words), 64)


def test_phash_is_imagehash_phash_bit_for_bit():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32), dtype=np.uint8) for _ in range(20)]
    frames = decode_video(real_clip("chaplin_00.mp4"), num_frames=10, size=(32, 32)).frames
    images += [np.asarray(Image.fromarray(f).convert("L")) for f in frames]
    ours = video_fp.phash_frames(np.stack(images).astype(np.float64))
    for img, word in zip(images, _bits(ours), strict=True):
        ref = imagehash.phash(Image.fromarray(img), hash_size=8, highfreq_factor=4).hash.flatten()
        assert np.array_equal(word.astype(bool), ref)


def test_phash_of_scaled_frames_matches_imagehash_of_full_frames():
    """FFmpeg's 32x32 scaling (ours) against PIL's Lanczos of the full frame (imagehash): a few bits apart,
    while frames of another clip are ~32 bits apart."""
    full = decode_video(real_clip("bbb_12.mp4"), num_frames=8).frames
    small = decode_video(real_clip("bbb_12.mp4"), num_frames=8, size=(32, 32)).frames
    ours = _bits(video_fp.video_fingerprint(small))
    ref = np.stack([imagehash.phash(Image.fromarray(f)).hash.flatten() for f in full])
    same = (ours != ref).sum(axis=1)
    film = decode_video(real_clip("chaplin_00.mp4"), num_frames=8).frames
    other = (ours != np.stack([imagehash.phash(Image.fromarray(f)).hash.flatten() for f in film])).sum(axis=1)
    assert same.mean() <= 8 and other.mean() >= 16, (same, other)


def test_flat_frames_carry_no_information():
    black = np.zeros((3, 32, 32, 3), np.uint8)
    assert video_fp.video_fingerprint(black).tolist() == [0, 0, 0]
    assert video_keys(Packed.from_list([video_fp.video_fingerprint(black)], "<u8"))[1].size == 0


def _audio(name: str, **kw) -> np.ndarray:
    return decode_audio(name, sampling_rate=audio_fp.SAMPLING_RATE, **kw)[0]


def test_audio_volume_and_offset():
    x = _audio(real_clip("bbb_12.mp4"))
    a = audio_fp.audio_fingerprint(x)
    quiet = audio_fp.audio_fingerprint(x * 10 ** (-3 / 20))
    assert np.mean(audio_fp._popcount(a ^ quiet)) / 32 < 0.01  # a volume change flips (almost) nothing
    late = audio_fp.audio_fingerprint(x[int(0.5 * audio_fp.SAMPLING_RATE):])
    assert audio_fp.compare_audio(a, late) < 0.1  # 0.5 s later: found at the right shift
    assert audio_fp.compare_audio(a, late, max_shift_s=0.2) > 0.3  # ... and only by shifting
    other = audio_fp.audio_fingerprint(_audio(real_clip("chaplin_00.mp4")))
    assert audio_fp.compare_audio(a, other) > 0.4


def test_index_pairs_only_clips_that_share_keys():
    rng = np.random.default_rng(1)
    prints = [rng.integers(1, 2**32, 400, dtype=np.uint64).astype(np.uint32) for _ in range(300)]
    copy = prints[7][20:].copy()
    flip = rng.random((copy.size, 32)) < 0.08  # 8% of the bits flipped
    copy ^= (flip * (1 << np.arange(32, dtype=np.uint64))).sum(axis=1).astype(np.uint32)
    prints.append(copy)
    i, j = candidate_pairs(*audio_keys(Packed.from_list(prints, "<u4")))
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(7, 300)]
    assert error_rate(prints[7], copy, 30, 50, 32) < 0.1
    matches, candidates = find_duplicates(prints, [None] * len(prints))
    assert candidates == 1 and [(m.i, m.j, m.kind) for m in matches] == [(7, 300, "audio")]


def test_packed_from_arrow_is_the_list():
    import pyarrow as pa

    rng = np.random.default_rng(2)
    prints = [rng.integers(0, 2**32, int(n), dtype=np.uint64).astype(np.uint32) for n in rng.integers(0, 9, 50)]
    prints[3] = None
    col = pa.chunked_array([pa.array([None if p is None else p.astype("<u4").tobytes() for p in prints[:20]]),
                            pa.array([None if p is None else p.astype("<u4").tobytes() for p in prints[20:]])])
    packed = Packed.from_arrow(col, "<u4")
    for k, p in enumerate(prints):
        got = packed.get(k)
        assert (got is None) if p is None else np.array_equal(got, p)


# --- Chromaprint (fpcalc) as the reference for the audio decisions -------------------------------------

FPCALC = shutil.which("fpcalc")


def _chromaprint(path: str, tmp) -> np.ndarray:
    """fpcalc's raw fingerprint of the clip's audio, decoded by avsets to a WAV (Debian's fpcalc 1.5.1 ends
    every file with "Error decoding audio frame (End of file)" and exit status 3 after printing the whole
    fingerprint, so the status is not checked; an empty output is)."""
    samples, sr = decode_audio(path, sampling_rate=11025)
    wav = str(tmp / "clip.wav")
    soundfile.write(wav, samples, sr)
    out = subprocess.run([FPCALC, "-raw", "-plain", "-length", "30", wav], capture_output=True, text=True,
                         check=False, timeout=60).stdout.strip()
    assert out, f"fpcalc printed no fingerprint for {path}"
    return np.array([int(v) & 0xFFFFFFFF for v in out.split(",")], np.uint32)


@pytest.mark.skipif(FPCALC is None, reason="fpcalc (Debian: apt-get install libchromaprint-tools) is the "
                                           "reference audio fingerprint; not installed here")
def test_audio_decisions_agree_with_chromaprint(tmp_path):
    src = real_clip("bbb_12.mp4")
    copies = {
        "opus": transcode(src, str(tmp_path / "a.webm"), seconds=5, vcodec="vp9", acodec="opus"),
        "late": transcode(src, str(tmp_path / "b.mp4"), seconds=5, start=0.5),
        "quiet": transcode(src, str(tmp_path / "c.mp4"), seconds=5, gain_db=-3),
    }
    others = [real_clip(n) for n in CLIPS if n not in ("bbb_12.mp4", "smpte_00.mp4")]  # smpte: a pure tone
    cp_rate = 11025 / 1365  # Chromaprint: one 32-bit word every 4096/3 samples at 11,025 Hz
    ref_o = _chromaprint(src, tmp_path)
    ours_o = audio_fp.audio_fingerprint(_audio(src))
    rows = []
    for name, path in [*copies.items(), *((o, o) for o in others)]:
        cp = error_rate(ref_o, _chromaprint(path, tmp_path), int(cp_rate), int(2 * cp_rate), 32)
        ours = audio_fp.compare_audio(ours_o, audio_fp.audio_fingerprint(_audio(path)))
        rows.append((name, cp, ours))
    print("\n".join(f"{n:<50} chromaprint BER {c:.3f}  ours {o:.3f}" for n, c, o in rows))
    for name, cp, ours in rows:
        same = name in copies
        assert (cp <= 0.35) == same and (ours <= audio_fp.MATCH_BER) == same, (name, cp, ours)


def test_fingerprint_decode_matches_avsets_decode():
    """The fingerprint's own decode (B-frames skipped, luma cell means) gives the frames ``decode_video``
    gives at 4 fps, to a few pHash bits, and never frames past the end of the file."""
    from avsets.ops.leakage.decode_small import small_gray_frames

    path = real_clip("bbb_12.mp4")  # 6 s
    small = small_gray_frames(path, None, duration=10.0)
    assert small.shape == (24, 32, 32)
    ref = video_fp.gray(decode_video(path, duration=10.0, fps=4, size=(32, 32)).frames)[:24]  # it repeats the last
    assert np.bitwise_count(video_fp.phash_frames(small) ^ video_fp.phash_frames(ref)).mean() <= 4
    cut = small_gray_frames(path, None, offset=1.0, duration=2.0)
    assert cut.shape[0] == 8
    assert np.bitwise_count(video_fp.phash_frames(cut) ^ video_fp.phash_frames(small[4:12])).mean() <= 4
    with pytest.raises(MissingStreamError):
        small_gray_frames(real_clip("../vorbis_bbb_13s.webm"), None)


def test_a_failed_clip_keeps_no_secret():
    from avsets.ops.leakage.store import fingerprint_row

    url = "https://user:hunter2@127.0.0.1:9/clip.mp4?X-Amz-Signature=abcdef123"
    fp = fingerprint_row({"id": "x", "audio": {"path": url, "bytes": None}, "video": {"path": url, "bytes": None},
                          "start": 0.0, "end": 10.0, "media_offset": 0.0})
    assert fp.error and fp.audio is None and fp.video is None
    assert "hunter2" not in fp.error and "abcdef123" not in fp.error


def test_fingerprint_rate_paths_agree():
    """44.1 kHz goes through the cheap decimator, 48 kHz through swresample: the same fingerprint either way."""
    from avsets.media.decoding import resample

    x, sr = decode_audio(real_clip("chaplin_00.mp4"))
    assert sr == 44100
    ref = audio_fp.audio_fingerprint(resample(x[None], sr, audio_fp.SAMPLING_RATE)[0])
    fast = audio_fp.audio_fingerprint(audio_fp.to_fingerprint_rate(x, sr))
    x48 = resample(x[None], sr, 48000)[0]
    other = audio_fp.audio_fingerprint(audio_fp.to_fingerprint_rate(x48, 48000))
    assert abs(fast.size - ref.size) <= 1 and abs(other.size - ref.size) <= 1
    assert audio_fp.compare_audio(ref, fast) < 0.02 and audio_fp.compare_audio(ref, other) < 0.02


@pytest.mark.parametrize("sr", [11025, 22050, 44100, 88200, 176400])
def test_polyphase_decimator_is_the_direct_filter(sr):
    """The polyphase decimator gives the direct sums ``y[i] = sum_t h[t] x[q i + t]`` (NumPy's convolution,
    every q-th output), for every q, including one whose tap count is not a multiple of q (176.4 kHz)."""
    rng = np.random.default_rng(sr)
    q = sr * 2 // 11025
    h = audio_fp._lowpass(q)
    for size in (h.size - 1, h.size, h.size + q - 1, 5_000 + q // 2):
        x = rng.standard_normal(size).astype(np.float32)
        ref = np.convolve(x.astype(np.float64), h[::-1], mode="valid")[::q] if size >= h.size else np.zeros(0)
        got = audio_fp.to_fingerprint_rate(x, sr)
        assert got.shape == ref.shape and np.allclose(got, ref, rtol=0, atol=1e-12), (size, got.shape, ref.shape)


def test_chunked_band_energies_are_the_whole_transform():
    """The fingerprint transforms its frames in cache-sized chunks: the words equal those of one transform of
    all frames (the textbook form, written out here), bit for bit, across chunk borders."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(audio_fp.FRAME + audio_fp.HOP * (3 * audio_fp._CHUNK + 7))
    x[: audio_fp.FRAME] *= 1e-6  # a silent start: zero words too
    frames = np.lib.stride_tricks.sliding_window_view(x, audio_fp.FRAME)[:: audio_fp.HOP]
    edges = audio_fp._EDGES
    spec = np.fft.rfft(frames * np.hanning(audio_fp.FRAME), axis=1)
    energy = np.add.reduceat(np.abs(spec[:, edges[0]:edges[-1]]) ** 2, edges[:-1] - edges[0], axis=1)
    d = energy[:, :-1] - energy[:, 1:]
    bits = (d[1:] - d[:-1]) > 0
    ref = (bits * (1 << np.arange(31, -1, -1, dtype=np.uint64))).sum(axis=1).astype(np.uint32)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    ref[(rms[1:] < audio_fp.SILENCE_RMS) | (rms[:-1] < audio_fp.SILENCE_RMS)] = 0
    got = audio_fp.audio_fingerprint(x)
    assert got.shape == ref.shape and (got == 0).any()
    assert np.bitwise_count(got ^ ref).sum() <= 2  # |X|^2 vs re^2 + im^2 may round one coefficient apart
