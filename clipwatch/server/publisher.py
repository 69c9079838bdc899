"""FramePublisher: a camera's scored frames to the viewers, as JPEGs through the hub.

Frames are encoded only when some client wants them (plain, with the heatmap, or both);
the hub keeps each client's newest frames, so a slow viewer never slows the camera.
"""

from __future__ import annotations

import numpy as np

from clipwatch.server.hub import Hub, LiveFrame
from clipwatch.server.jpeg import encode_jpeg, overlay_jpeg


class FramePublisher:
    def __init__(self, camera: str, hub: Hub, jpeg_quality: int) -> None:
        self.camera = camera
        self.hub = hub
        self.quality = jpeg_quality

    def publish(self, frame: int, captured_at: float, image: np.ndarray | None,
                error_map: np.ndarray | None) -> bool:
        """Send one frame to the clients that want it; returns whether anything was sent."""
        want_plain, want_overlay = self.hub.wants_frames(self.camera)
        if image is None or not (want_plain or want_overlay):
            return False
        plain = encode_jpeg(image, self.quality) if want_plain else None
        over = overlay_jpeg(image, error_map, self.quality) \
            if want_overlay and error_map is not None else None
        self.hub.publish_frame(LiveFrame(self.camera, frame, captured_at, plain, over))
        return True
