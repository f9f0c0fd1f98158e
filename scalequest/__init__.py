"""ScaleQuest: synthesize math question–answer datasets from scratch (arXiv 2410.18693)."""
__version__ = "0.1.0"
