"""Operations: work on a whole corpus: fetch, unpack, verify, report, export/push/sync, the quality
pass, leakage.

Imports every layer below it, never ``avsets.cli``.
"""
