"""Leakage audits: the same video across splits and corpora (issue 21; user guide: docs/leakage.md).

Modules, each small and importable on its own (this package imports none of them, so the report's light
``report_section`` does not pull in decoding):

- ``units``: ``corpus[:config][/split]`` specs, per-corpus folders, a split's rows as one Arrow table;
- ``overlap``: shared YouTube ids and segment overlap by Arrow joins (``avsets overlap``);
- ``audio_fp`` / ``video_fp`` / ``decode_small``: the fingerprints and the decode made for them;
- ``store``: fingerprints per clip in a Parquet table keyed by clip id + media fingerprint (resumable);
  ``store.fingerprint_row(row)`` is the one-decode entry point another per-clip pass can call;
- ``index``: the key-bucket index and offset-tolerant verification (``find_duplicates``);
- ``duplicates``: the ``dups.csv`` writer; ``report_section``: ``avsets report --leakage``; ``cli``.
"""
