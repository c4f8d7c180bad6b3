"""avsets never imports torch or torchcodec, and never makes ``datasets`` decode or encode media with them.

What is tested is what *we* import, not what ``datasets`` does: stock ``datasets`` imports torch on its own
when torch is installed (``IterableDataset`` adds torch's base class when streaming; hashing and formatting
look at torch when it is loaded), which made the old ``"torch" not in sys.modules`` check fail in a venv with
torch. Here every attempt to import ``torch*`` / ``torchcodec*`` is recorded with its importer, by a wrapper
of ``builtins.__import__`` (every ``import`` statement, also of modules already loaded: its ``globals``
argument names the importer) and a meta-path finder (``importlib.import_module`` / ``find_spec``). An
attempt is ours when

- the importer is an avsets module, or
- avsets is on the stack and the importer is ``datasets``' media code (``features/audio.py``,
  ``features/video.py``, ``features/_torchcodec.py``, or torchcodec from ``datasets.features``): avsets
  handed media to ``datasets``' torchcodec path (the ``Audio.encode_example`` trap). ``datasets.config``
  only asking whether torch/torchcodec are installed is not an import.

Each workload runs in a fresh interpreter; the recorder's own verdicts are attacked with deliberate
offenders, so the test cannot pass by recording nothing.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from ux_support import demo_media, run_python

from avsets.ops.demo import sample_data_dir

RECORDER = textwrap.dedent('''
    import faulthandler
    faulthandler.enable(all_threads=True)  # a native abort (the rare -6) prints every thread's stack to stderr
    import builtins, importlib.abc, sys

    WATCH = ("torch", "torchcodec")
    MEDIA = ("datasets.features.audio", "datasets.features.video", "datasets.features._torchcodec")
    HITS = []

    def _stack_modules(frame):
        out = []
        while frame is not None:
            out.append(frame.f_globals.get("__name__", "?"))
            frame = frame.f_back
        return out

    def _ours(name, importer, stack):
        if importer == "avsets" or importer.startswith("avsets."):
            return True
        in_avsets = any(m == "avsets" or m.startswith("avsets.") for m in stack)
        torchcodec_for_media = name.split(".")[0] == "torchcodec" and importer.startswith("datasets.features.")
        return in_avsets and (importer in MEDIA or torchcodec_for_media)

    def _record(name, importer, frame):
        stack = _stack_modules(frame)
        HITS.append({"name": name, "importer": importer, "ours": _ours(name, importer, stack),
                     "stack": [m for m in stack if m.split(".")[0] in ("avsets", "datasets")][:8]})

    _orig_import = builtins.__import__

    def _import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] in WATCH:
            _record(name, (globals or {}).get("__name__", "?"), sys._getframe(1))
        return _orig_import(name, globals, locals, fromlist, level)

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in WATCH:
                f = sys._getframe(1)
                while f is not None and (f.f_code.co_filename.startswith("<frozen")
                                         or f.f_globals.get("__name__", "").startswith("importlib")):
                    f = f.f_back
                _record(name, f.f_globals.get("__name__", "?") if f else "?", f)
            return None

    builtins.__import__ = _import
    sys.meta_path.insert(0, _Finder())
''')

FOOTER = textwrap.dedent('''
    import json as _json
    print(_json.dumps(HITS))
''')


def _run(body: str, *argv: str) -> list[dict]:
    p = run_python(RECORDER + textwrap.dedent(body) + FOOTER, *argv)
    assert p.returncode == 0, f"exit {p.returncode}: " + p.stderr[-6000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


WORKLOADS = {
    "map-style prepare + decode audio and video": """
        import sys, avsets
        ds = avsets.load_dataset("vggsound", data_dir=sys.argv[1], media_dir=sys.argv[2], cache_dir=sys.argv[3],
                                 num_frames=4)
        rows = [ds["train"][i] for i in range(len(ds["train"]))]
        assert any(r["audio"] is not None for r in rows) and any(r["video"] is not None for r in rows)
    """,
    "streaming decode, two epochs": """
        import sys, avsets
        ds = avsets.load_dataset("vggsound", split="train", data_dir=sys.argv[1], media_dir=sys.argv[2],
                                 cache_dir=sys.argv[3], streaming=True, sampling_rate=8000)
        for epoch in range(2):
            ds.set_epoch(epoch)
            assert sum(1 for _ in ds) > 0
    """,
    "decode=False + avsets.decode after with_format": """
        import sys, avsets
        ds = avsets.load_dataset("vggsound", split="train", data_dir=sys.argv[1], media_dir=sys.argv[2],
                                 cache_dir=sys.argv[3], decode=False)
        ds = avsets.decode(ds.with_format("numpy"), num_frames=2)
        assert ds[0]["audio"]["array"].ndim == 1
    """,
    "export, then stock datasets + avsets.decode": """
        import sys, datasets, avsets
        from avsets.ops.publish import export
        export("vggsound", "default", data_dir=sys.argv[1], media_dir=[sys.argv[2]], out=sys.argv[3] + "/hub")
        for streaming in (False, True):
            ds = datasets.load_dataset(sys.argv[3] + "/hub", "default", split="train", streaming=streaming)
            assert next(iter(avsets.decode(ds)))["audio"]["array"].size > 0
    """,
    "verify with probing": """
        import sys
        from avsets.ops.verify import verify
        assert verify("vggsound", data_dir=sys.argv[1], media_dir=sys.argv[2])[0].found > 0
    """,
}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return demo_media(tmp_path_factory.mktemp("imports"), n_train=4, n_test=1)


@pytest.mark.slow
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_avsets_imports_no_torch(media, tmp_path, workload):
    hits = _run(WORKLOADS[workload], sample_data_dir(), str(media), str(tmp_path))
    ours = [h for h in hits if h["ours"]]
    assert ours == [], ours


OFFENDERS = [  # (code, expected verdict of the recorder)
    # an avsets module importing torch (fails here without torch; the attempt is what counts)
    ("exec('try:\\n import torch\\nexcept ImportError:\\n pass', {'__name__': 'avsets.offender'})", True),
    # ... with importlib, or a submodule, or torchcodec
    ("exec('import importlib\\ntry:\\n importlib.import_module(\"torchcodec.decoders\")\\n"
     "except ImportError:\\n pass', {'__name__': 'avsets.decoding_fake'})", True),
    ("exec('try:\\n from torch.utils import data\\nexcept ImportError:\\n pass', {'__name__': 'avsets'})", True),
    # torch already loaded (a stub): the import statement still counts, though no finder runs
    ("import types; sys.modules['torch'] = types.ModuleType('torch'); "
     "exec('import torch', {'__name__': 'avsets.cached'})", True),
    # avsets handing audio to datasets' encoder, which imports torch + torchcodec (the builder trap)
    ("exec('''import datasets\\ntry:\\n datasets.Dataset.from_dict({\"a\": [{\"path\": \"x.wav\", \"bytes\": b\"0\"}]}, "
     "features=datasets.Features({\"a\": datasets.Audio(decode=False)}))\\nexcept ImportError:\\n pass''', "
     "{'__name__': 'avsets.builder_fake'})", True),
    # datasets' own torch lookups, even with avsets on the stack, are not ours
    ("exec('import importlib.util\\nimportlib.util.find_spec(\"torch\")', {'__name__': 'datasets.iterable_dataset'})",
     False),
    ("exec('''def f():\\n exec(\"try:\\\\n import torch.utils.data\\\\nexcept ImportError:\\\\n pass\", "
     "{\"__name__\": \"datasets.iterable_dataset\"})\\nf()''', {'__name__': 'avsets.api_fake'})", False),
    # the same encoder call made by a user's script, not by avsets, is not ours either
    ("import datasets\ntry:\n datasets.Dataset.from_dict({'a': [{'path': 'x.wav', 'bytes': b'0'}]}, "
     "features=datasets.Features({'a': datasets.Audio(decode=False)}))\nexcept ImportError:\n pass", False),
]


@pytest.mark.slow
@pytest.mark.parametrize(("code", "ours"), OFFENDERS)
def test_the_recorder_tells_our_imports_from_datasets(code, ours):
    hits = _run("import sys\n" + code)
    assert hits, "the attempt was not recorded"
    assert any(h["ours"] for h in hits) == ours, hits
