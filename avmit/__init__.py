"""AVMIT, Audiovisual Moments in Time (Joannou et al., 2023): audiovisual ratings of 57,177 Moments-in-Time clips."""
