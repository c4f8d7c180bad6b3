"""Core: the vocabulary every layer uses (errors, segments, paths, templates, secrets, progress).

Imports nothing of avsets beyond this folder.
"""
