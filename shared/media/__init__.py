"""Media: where media bytes live (one ``MediaSource`` per kind, the media index, row-to-file
resolution) and how they decode (sample- and frame-exact).

Imports ``avsets.core`` and ``avsets.metadata``.
"""
