"""Media mirrors built at test time in the layouts third parties publish (issue 11).

Rows are real VGGSound sample rows (``vggsound/sample``); media are encoded here with PyAV/soundfile
(:mod:`avsets.media.synth`: audio is a tone whose phase encodes absolute time, frames carry their index).

- ``zip``: nested folders, authors' names ``{ytid}_{start:06d}.mp4``, canonical ``..._{ms}_{ms}.flac``, a
  whole video ``{ytid}.mp4`` (41 s), junk members, unsafe names, one corrupt member, a duplicate;
- ``tar``: a WebDataset shard (``{key}.flac`` + ``{key}.json`` per sample);
- ``parquet``: an AudioSet-style mirror (``video_id``, ``audio`` = ``{bytes, path}`` with the 10-s segment as
  FLAC under ``audio/bal_train/{ytid}.flac``, ``labels``, ``human_labels``), several row groups.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from avsets.media.synth import write_audio, write_video

# real VGGSound sample rows: (youtube_id, start), all in the train split
ZIP_ROWS = [("--0PQM4-hqg", 30), ("--56QUhyDQM", 185), ("--5OkAjCI7g", 40), ("--8puiAGLhs", 30)]
ZIP_WHOLE = ("--9O4XZOge4", 30)  # a whole 41-s video named by id alone
ZIP_CORRUPT = ("--96EN9NUQM", 242)
TAR_ROWS = [("--Aa4M484QM", 0), ("--Bu2xe4OSo", 430), ("--CC5pH97q4", 4)]
PARQUET_ROWS = [("--CudrykwoE", 67), ("--DTR0_mIGI", 11), ("--0PQM4-hqg", 30), ("--56QUhyDQM", 185),
                ("--5OkAjCI7g", 40)]


@dataclass
class Mirrors:
    root: Path
    media: dict[str, bytes] = field(default_factory=dict)  # clip id -> exact member bytes

    def path(self, name: str) -> str:
        return str(self.root / name)


def clip_id(ytid: str, start: int) -> str:
    return f"{ytid}_{start * 1000}_{start * 1000 + 10000}"


def _audio_bytes(tmp: Path, start: float, ext: str = "flac", seconds: float = 10.0) -> bytes:
    p = tmp / f"a.{ext}"
    write_audio(p, seconds, start=start)
    return p.read_bytes()


def _video_bytes(tmp: Path, seconds: float, fps: int = 10) -> bytes:
    p = tmp / "v.mp4"
    write_video(p, seconds, fps=fps, size=(32, 24))
    return p.read_bytes()


def build(root: str | os.PathLike) -> Mirrors:
    """Write ``clips.zip``, ``wds-000000.tar``, ``audioset-bal.parquet`` and ``vggsound_00.tar.gz`` under root."""
    root = Path(root)
    tmp = root / "_work"
    tmp.mkdir(parents=True)
    m = Mirrors(root)
    # -- zip
    with zipfile.ZipFile(root / "clips.zip", "w") as z:
        for i, (ytid, start) in enumerate(ZIP_ROWS):
            if i % 2 == 0:
                data = _video_bytes(tmp, 10.0)
                name = f"vggsound/part{i}/video/{ytid}_{start:06d}.mp4"
            else:
                data = _audio_bytes(tmp, float(start))
                name = f"deep/a/b/{ytid}_{start * 1000}_{start * 1000 + 10000}.flac"
            z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if i == 1 else zipfile.ZIP_STORED)
            m.media[clip_id(ytid, start)] = data
        whole = _video_bytes(tmp, 41.0)
        z.writestr(f"whole/{ZIP_WHOLE[0]}.mp4", whole)
        m.media[clip_id(*ZIP_WHOLE)] = whole
        z.writestr(f"bad/{ZIP_CORRUPT[0]}_{ZIP_CORRUPT[1]:06d}.flac", b"this is not a flac file" * 10)
        z.writestr("README.txt", "junk")
        z.writestr("meta/labels.json", json.dumps({"a": 1}))
        z.writestr(f"../{TAR_ROWS[0][0]}_{TAR_ROWS[0][1]:06d}.flac", _audio_bytes(tmp, 0.0))  # unsafe: ignored
        z.writestr(f"dup/{ZIP_ROWS[1][0]}_{ZIP_ROWS[1][1] * 1000}_{ZIP_ROWS[1][1] * 1000 + 10000}.flac",
                   _audio_bytes(tmp, 0.0))  # a second member for one row: the first wins
    # -- WebDataset tar
    with tarfile.open(root / "wds-000000.tar", "w", format=tarfile.GNU_FORMAT) as t:
        for ytid, start in TAR_ROWS:
            key = f"{ytid}_{start:06d}"
            data = _audio_bytes(tmp, float(start))
            m.media[clip_id(ytid, start)] = data
            for suffix, payload in (("flac", data), ("json", json.dumps({"ytid": ytid}).encode())):
                ti = tarfile.TarInfo(f"shard0/{key}.{suffix}")
                ti.size = len(payload)
                t.addfile(ti, io.BytesIO(payload))
    # -- AudioSet-style Parquet: id-named 10-s segments
    rows = []
    for ytid, start in PARQUET_ROWS:
        data = _audio_bytes(tmp, float(start))
        m.media.setdefault(clip_id(ytid, start), data)
        m.media["pq:" + clip_id(ytid, start)] = data
        rows.append({"video_id": ytid, "audio": {"bytes": data, "path": f"audio/bal_train/{ytid}.flac"},
                     "labels": ["/m/09x0r"], "human_labels": ["Speech"]})
    pq.write_table(pa.Table.from_pylist(rows), root / "audioset-bal.parquet", row_group_size=2)
    # -- a .tar.gz (streaming only)
    with tarfile.open(root / "vggsound_00.tar.gz", "w:gz") as t:
        data = _audio_bytes(tmp, float(TAR_ROWS[0][1]))
        ti = tarfile.TarInfo(f"{TAR_ROWS[0][0]}_{TAR_ROWS[0][1]:06d}.flac")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    return m
