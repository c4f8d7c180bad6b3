"""VGGSound (Chen et al., ICASSP 2020): 199,176 ten-second YouTube clips, 309(+1) classes."""
