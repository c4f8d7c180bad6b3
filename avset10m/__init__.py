"""AVSET-10M (AVSET-700K from AudioSet + 9.9M Panda-70M clips): audio-visual correspondence metadata."""
