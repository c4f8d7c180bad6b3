"""Metadata: reading and writing the files that describe clips (never media bytes): CSV/TXT/JSON
readers, the ontology, manifests, the fetch ledger, the quality table's contract.

Imports only ``avsets.core``.
"""
