"""Accuracy studies on real data: the MiniLM model, the video-token fixture, sample tensors and
the ``semdialect eval`` study. Uses the golden model; renders nothing (see ``reports``)."""
