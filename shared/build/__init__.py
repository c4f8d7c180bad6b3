"""Build: the ``datasets`` builders' shared machinery and the public load API (``load_dataset``,
``decode``, filters, overlays). The corpus packages (``avsets.vggsound``...) belong to this layer.

Imports core, metadata and media.
"""
