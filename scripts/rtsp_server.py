#!/usr/bin/python3
"""A real RTSP server for tests and demos: GStreamer's rtsp-server (through GObject
introspection) serving a folder of real frames, looping, as H.264 over RTSP.

Runs with Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-ugly, gstreamer1.0-libav): the project's own Python has no `gi`.

    /usr/bin/python3 scripts/rtsp_server.py ../shared/data/ucsd_ped2/testing/frames/01 \\
        --port 8554 --fps 10        # -> rtsp://127.0.0.1:8554/stream

Prints "ready <url>" once it listens. JPEG and TIFF folders are read with multifilesrc (a
file source does not loop); the colorimetry caps keep grey levels exact through x264
(without them they shift), and avdec_tiff decodes TIFF where gdkpixbufdec stalls.
"""

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

DECODERS = {".jpg": ("image/jpeg", "jpegdec"), ".jpeg": ("image/jpeg", "jpegdec"),
            ".tif": ("image/tiff", "avdec_tiff"), ".tiff": ("image/tiff", "avdec_tiff")}


def pipeline_for(folder: Path, fps: int) -> str:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in DECODERS)
    if not files:
        sys.exit(f"rtsp_server: no .jpg or .tif frames in {folder}")
    first = files[0]
    digits = len(first.stem)
    start = int(first.stem)
    caps, decoder = DECODERS[first.suffix.lower()]
    pattern = folder / f"%0{digits}d{first.suffix}"
    return (f"( multifilesrc location={pattern} index={start} start-index={start} loop=true "
            f"caps={caps},framerate={fps}/1 ! {decoder} ! videoconvert ! "
            f"video/x-raw,format=I420,colorimetry=1:4:0:0 ! "
            f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! "
            f"rtph264pay name=pay0 pt=96 )")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--path", default="/stream")
    parser.add_argument("--fps", type=int, default=10)
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(pipeline_for(args.folder.resolve(), args.fps))
    factory.set_shared(True)  # every client sees the same live stream, like a camera
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}")
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    print(f"ready rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
