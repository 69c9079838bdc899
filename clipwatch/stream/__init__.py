"""Frames in: sources, preprocessing, the clip buffer and datasets. Imports neither torch nor fastapi."""
