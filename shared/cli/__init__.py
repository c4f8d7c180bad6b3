"""Command line: argument parsing and exit codes (0 done, 1 some clips failed, 2 usage/set-up).

``app`` is ``avsets``; ``fetch``, ``publish``, ``sync``, ``quality``, ``leakage`` add their
subcommands. Nothing below this layer imports it.
"""
