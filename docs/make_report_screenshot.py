"""Make ``docs/report.png``: the coverage report of the bundled VGGSound sample, as headless Chromium shows it.

The sample's metadata is real; the media are synthetic tones written here, and the ledger is written with
avsets' own ``Ledger`` as three fetch runs would leave it (most clips fetched in the first run, some gone
removed / private / unavailable in later ones), so every chart of the report has something to show.

It runs inside a temporary folder and gives the report relative paths (``meta``, ``media``), so the picture
shows what a user types, not this machine's folders.  The screenshot is taken by the tests' Chromium helper
(``tests/browser.py``).

Run: ``python docs/make_report_screenshot.py`` (needs matplotlib and the Debian ``chromium`` package).
"""

from __future__ import annotations

import io
import os
import random
import shutil
import sys
import tempfile

from avsets.build.api import load_dataset
from avsets.media.synth import write_audio
from avsets.metadata.ledger import Ledger, LedgerRow
from avsets.ops.demo import sample_data_dir
from avsets.ops.report import build_report
from avsets.ops.report_render import write_report

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from browser import find_chromium, screenshot  # noqa: E402 - the tests' helper, beside this folder

GONE = ("unavailable", "private", "removed")


def main() -> int:
    if find_chromium() is None:
        print("needs chromium (apt-get install -y chromium)", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="avsets-report-shot-")
    here = os.getcwd()
    try:
        os.chdir(work)  # every path the report shows is relative: meta, media
        data_dir = "meta"
        shutil.copytree(sample_data_dir(), data_dir)
        meta = load_dataset("vggsound", data_dir=data_dir, cache_dir=os.path.join(work, "cache"))
        rows = [r for split in ("train", "test") for r in meta[split]]
        rng = random.Random(7)
        media = "media"
        os.makedirs(media)
        # run 1 fetched 88%; run 2 found 5% of those gone; run 3 another 3%
        fate = {r["id"]: ("ok" if rng.random() < 0.88 else rng.choice(GONE)) for r in rows}
        later = [[i for i, f in fate.items() if f == "ok" and rng.random() < p] for p in (0.05, 0.03)]
        with Ledger(os.path.join(media, "avsets-ledger.sqlite")) as led:
            led.begin_run()
            for r in rows:
                led.record(LedgerRow(id=r["id"], status=fate[r["id"]], youtube_id=r["youtube_id"], start=r["start"],
                                     end=r["end"]))
            led.end_run({"ok": sum(f == "ok" for f in fate.values())})
            for vanished in later:
                led.begin_run()
                for cid in vanished:
                    if fate[cid] == "ok":
                        fate[cid] = rng.choice(GONE)
                        led.record(LedgerRow(id=cid, status=fate[cid]))
                led.end_run({s: sum(fate[c] == s for c in vanished) for s in GONE})
        for r in rows:
            if fate[r["id"]] == "ok":
                sr = 16000 if rng.random() < 0.8 else 44100
                write_audio(os.path.join(media, f"{r['id']}.flac"), seconds=r["end"] - r["start"], sr=sr)
        rep = build_report("vggsound", data_dir=data_dir, media_dir=media, progress=False)
        html, _ = write_report(rep, "report.html")
        shot = os.path.join(work, "shot.png")
        screenshot("file://" + os.path.join(work, html), shot, width=1100, height=2000)
        from PIL import Image

        img = Image.open(shot).convert("RGB").quantize(colors=128)
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        with open(os.path.join(HERE, "report.png"), "wb") as f:
            f.write(buf.getvalue())
        print(f"docs/report.png: {len(buf.getvalue())} bytes")
        return 0
    finally:
        os.chdir(here)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
