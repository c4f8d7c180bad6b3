"""AudioSetZSL (Parida et al., WACV 2020): 33 classes of AudioSet segments for audio-visual zero-shot learning."""
