"""Frames in: sources, preprocessing, the clip buffer, datasets. Imports no torch or fastapi."""
