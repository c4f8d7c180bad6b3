"""Mirror copies built at test time, in the layouts third parties publish (issue 11).

- a VGGSound copy as ``vggsound_NN.tar.gz`` archives: ``{ytid}_{start:06d}.mp4`` under nested folders, the
  copy's own ``vggsound.csv``, junk members, a directory, a symlink, ``..`` and absolute names, a corrupt
  member, a clip held twice, rows with no member;
- an AudioSet WebDataset shard: ``{key}.flac`` + ``{key}.json`` per sample (one key that is not a YouTube id,
  named by its ``.json``);
- an AudioSet Parquet mirror: ``video_id``, ``audio`` ``{bytes, path: audio/bal_train/{ytid}.flac}``,
  ``labels``, ``human_labels``, several row groups, one whole-length FLAC (longer than its segment).

Real media: mp4s from ``fetch_server.make_video`` (H.264 + AAC via PyAV), FLACs via soundfile.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import json
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from fetch_server import make_video

VGG_IDS = ["-vggAAAAAA0", "vgg_BBBBBB1", "vggCCCCCCC2", "vggDDDDDDD3", "vggEEEEEEE4", "vggFFFFFFF5",
           "vggGGGGGGG6", "vggHHHHHHH7", "vggIIIIIII8", "vggJJJJJJJ9"]
VGG_TEST = {1, 5, 8}
LABELS = ["people marching", "waterfall burbling", "playing tennis", "dog barking"]


def make_flac(path: Path, seconds: float, *, sr: int = 8000, seed: int = 0) -> Path:
    """A mono FLAC whose samples differ per seed (a chirp plus seeded noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    sig = 0.3 * np.sin(2 * np.pi * (200 + 37 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(str(path), sig.astype(np.float32), sr, format="FLAC")
    return path


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes, **kw) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    for k, v in kw.items():
        setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data))


@dataclass
class VggMirror:
    """A VGGSound copy: metadata folder, archives, and what each row should get."""

    meta: Path
    archives: list[Path]
    sources: dict[str, Path] = field(default_factory=dict)  # row id -> the mp4 that must serve it
    missing: dict[str, set[str]] = field(default_factory=dict)  # split -> row ids with no usable member
    corrupt: set[str] = field(default_factory=set)
    splits: dict[str, list[str]] = field(default_factory=dict)


def vgg_row_id(i: int) -> str:
    start = 10 * i + 1
    return f"{VGG_IDS[i]}_{start * 1000}_{(start + 10) * 1000}"


def vggsound_mirror(root: Path, *, seconds: float = 1.0) -> VggMirror:
    """Two ``.tar.gz`` archives holding rows 0-2 and 4-7 (5 corrupt, 0 again as a duplicate); 3 only under
    unsafe names; 8 and 9 nowhere."""
    root.mkdir(parents=True, exist_ok=True)
    meta = root / "meta"
    meta.mkdir()
    shutil.copy(str(importlib.resources.files("avsets.vggsound") / "sample" / "stat.csv"), meta / "stat.csv")
    lines = []
    splits: dict[str, list[str]] = {"train": [], "test": []}
    for i, ytid in enumerate(VGG_IDS):
        split = "test" if i in VGG_TEST else "train"
        label = LABELS[i % len(LABELS)]
        lines.append(f'{ytid},{10 * i + 1},"{label}",{split}\n')
        splits[split].append(vgg_row_id(i))
    (meta / "vggsound.csv").write_text("".join(lines))
    media = root / "src"
    media.mkdir()
    videos = {i: make_video(media / f"{i}.mp4", seconds, seed=10 + i, width=64, height=48) for i in (0, 1, 2, 4, 6, 7)}
    dup = make_video(media / "dup.mp4", seconds, seed=99, width=64, height=48)
    out = VggMirror(meta=meta, archives=[root / "mirror" / "vggsound_00.tar.gz", root / "mirror" / "vggsound_01.tar.gz"])
    out.archives[0].parent.mkdir()

    def name(i: int) -> str:
        return f"{VGG_IDS[i]}_{10 * i + 1:06d}.mp4"

    with tarfile.open(out.archives[0], "w:gz") as tf:
        tf.add(str(meta / "vggsound.csv"), arcname="vggsound_00/vggsound.csv")
        _add_bytes(tf, "vggsound_00/README.txt", b"not media\n")
        dir_info = tarfile.TarInfo("vggsound_00/video")
        dir_info.type = tarfile.DIRTYPE
        tf.addfile(dir_info)
        tf.add(str(videos[0]), arcname=f"vggsound_00/video/a/{name(0)}")
        tf.add(str(videos[1]), arcname=f"vggsound_00/video/b/deeper/{name(1)}")
        tf.add(str(videos[2]), arcname=name(2))
        _add_bytes(tf, f"../escape/{name(3)}", videos[0].read_bytes())
        _add_bytes(tf, f"/abs/{name(3)}", videos[0].read_bytes())
        link = tarfile.TarInfo(f"vggsound_00/video/{name(3)}")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with tarfile.open(out.archives[1], "w:gz") as tf:
        for i in (4, 6, 7):
            tf.add(str(videos[i]), arcname=f"vggsound_01/video/{name(i)}")
        _add_bytes(tf, f"vggsound_01/video/{name(5)}", b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 500)
        tf.add(str(dup), arcname=f"vggsound_01/video/again/{name(0)}")
        _add_bytes(tf, "vggsound_01/.DS_Store", b"junk")
    for i in (0, 1, 2, 4, 6, 7):
        out.sources[vgg_row_id(i)] = videos[i]
    out.corrupt = {vgg_row_id(5)}
    out.missing = {"train": {vgg_row_id(3), vgg_row_id(9)}, "test": {vgg_row_id(8)}}
    out.splits = splits
    return out


# ------------------------------------------------------------------------------------------- AudioSet (ASCC rows)


@dataclass
class AudioSetMirror:
    meta: Path
    ids: list[str]
    start: float = 30.0
    end: float = 40.0
    sources: dict[str, Path] = field(default_factory=dict)  # youtube id -> FLAC serving it
    offsets: dict[str, float] = field(default_factory=dict)  # youtube id -> where the segment starts in it
    missing: set[str] = field(default_factory=set)
    webdataset: Path | None = None
    parquet: Path | None = None


def ascc_meta(root: Path, n: int = 6, start: float = 30.0, end: float = 40.0) -> tuple[Path, list[str]]:
    """A small ASCC metadata folder: the first ``n`` ids of the bundled lists plus a ``big_data.csv``."""
    sample = importlib.resources.files("avsets.ascc") / "sample"
    meta = root / "ascc_meta"
    meta.mkdir(parents=True)
    with open(str(sample / "all_cc_df.csv"), newline="") as f:
        rows = list(csv.reader(f))
    ids = [r[2] for r in rows[1:n + 1]]
    with open(meta / "all_cc_df.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows[:n + 1])
    with open(str(sample / "all_cc_qual_0_false.csv"), newline="") as f:
        qual = list(csv.reader(f))
    keep = [qual[0]] + [r for r in qual[1:] if r[1] in set(ids)]
    with open(meta / "all_cc_qual_0_false.csv", "w", newline="") as f:
        csv.writer(f).writerows(keep)
    with open(meta / "big_data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "0", "1", "2", "3"])
        for i, ytid in enumerate(ids):
            w.writerow([i, ytid, f"{start:.1f}", f"{end:.1f}", "/m/07r4wb8"])
    return meta, ids


def audioset_mirrors(root: Path) -> AudioSetMirror:
    """A WebDataset shard and a Parquet mirror of the same ASCC rows: ids 0-3 as 10-s segments, id 4 as the
    whole 60-s recording (segment at 30-40 s), id 5 in neither."""
    meta, ids = ascc_meta(root)
    m = AudioSetMirror(meta=meta, ids=ids)
    flacs = root / "flac"
    flacs.mkdir()
    for i, ytid in enumerate(ids[:5]):
        whole = i == 4
        m.sources[ytid] = make_flac(flacs / f"{i}.flac", 60.0 if whole else 10.0, seed=i)
        m.offsets[ytid] = m.start if whole else 0.0
    m.missing = {ids[5]}
    # WebDataset: one group per sample; sample 3's key is not a YouTube id, its .json names the clip
    m.webdataset = root / "wds" / "audioset-000000.tar"
    m.webdataset.parent.mkdir()
    with tarfile.open(m.webdataset, "w") as tf:
        _add_bytes(tf, "__README__.txt", b"webdataset shard\n")
        for i, ytid in enumerate(ids[:5]):
            key = f"sample{i:06d}" if i == 3 else ytid
            tf.add(str(m.sources[ytid]), arcname=f"{key}.flac")
            meta_json = {"video_id": ytid, "labels": ["/m/07r4wb8"]}
            if i == 3:
                meta_json.update(start=m.start, end=m.end)
            _add_bytes(tf, f"{key}.json", json.dumps(meta_json).encode())
    # Parquet: several row groups, only the columns mirrors have
    import pyarrow as pa
    import pyarrow.parquet as pq

    m.parquet = root / "pq" / "bal_train-00000-of-00001.parquet"
    m.parquet.parent.mkdir()
    recs = [{"video_id": ytid, "audio": {"bytes": m.sources[ytid].read_bytes(), "path": f"audio/bal_train/{ytid}.flac"},
             "labels": ["/m/07r4wb8"], "human_labels": ["Speech"]} for ytid in ids[:5]]
    recs.insert(2, {"video_id": "zzzzzzzzzzz", "audio": {"bytes": m.sources[ids[0]].read_bytes(),
                                                         "path": "audio/bal_train/zzzzzzzzzzz.flac"},
                    "labels": [], "human_labels": []})  # a clip no row asks for
    pq.write_table(pa.Table.from_pylist(recs), m.parquet, row_group_size=2)
    return m
