"""The quality pass (``avsets quality``): ``run`` measures every clip of a corpus, ``measure``
one clip. The table's contract (columns, flags, thresholds, reader) is
:mod:`avsets.metadata.quality`, which the loader imports without this pass.
"""
