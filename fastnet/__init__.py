"""fastnet: fast multi-layer perceptrons on the CPU (skeleton, being filled in)."""
__version__ = "0.1.0"
