"""ASCC, AudioSet Creative Commons (Heggan et al., ICANN 2022): the CC-BY-licensed clips of AudioSet."""
