"""Back-pressure on a real server: a client that stops reading loses stale video, never an
alert, and slows neither the pipeline nor a fast client.

The slow client is a real websocket connection with a small receive buffer that reads
nothing for a while; the server's sends to it block once the socket buffers fill, and its
own queues then hold only the newest frames.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

from websockets.sync.client import connect

STALL_SECONDS = 20.0  # longer than one pass of the looping clip (180 frames at 10 fps)


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    return sum(float(line.split(" ")[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def ws_connect(url: str, receive_buffer: int | None = None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    return connect(url.replace("http", "ws") + "/ws", sock=sock, max_queue=1,
                   max_size=2**22)


def test_a_stalled_client_loses_frames_not_alerts_and_slows_no_one(looping_server):
    server = looping_server
    url = server.url
    fast_frames, stop = [0], threading.Event()
    with ws_connect(url, receive_buffer=4096) as slow:
        hello = json.loads(slow.recv(timeout=10))
        slow.send(json.dumps({"type": "subscribe", "cameras": ["*"]}))

        def read_fast():
            with ws_connect(url) as fast:
                fast.recv(timeout=10)
                fast.send(json.dumps({"type": "subscribe", "cameras": ["*"]}))
                while not stop.is_set():
                    try:
                        message = fast.recv(timeout=1)
                    except TimeoutError:
                        continue
                    if isinstance(message, bytes):
                        fast_frames[0] += 1

        reader = threading.Thread(target=read_fast, daemon=True)
        reader.start()
        scored_before = metric(url, "clipwatch_frames_scored_total")
        time.sleep(STALL_SECONDS)  # the slow client reads nothing meanwhile
        scored = metric(url, "clipwatch_frames_scored_total") - scored_before
        stop.set()
        reader.join(10)

        # the pipeline kept its pace (no frame dropped at capture) and the fast client kept up
        assert metric(url, "clipwatch_frames_dropped_total") == 0
        assert scored >= 0.8 * STALL_SECONDS * 10  # the camera's 10 fps
        assert fast_frames[0] >= 0.8 * scored
        # the stalled client lost stale frames on the server...
        assert metric(url, "clipwatch_websocket_frames_dropped_total") > 0

        # ...but no alert: once it reads again it gets every alert message stored meanwhile
        with ws_connect(url) as probe:
            target = json.loads(probe.recv(timeout=10))["last_seq"]
        assert target > hello["last_seq"], "no alert happened while the client was stalled"
        seen, slow_frames = set(), 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(range(hello["last_seq"] + 1,
                                                             target + 1)) <= seen:
            message = slow.recv(timeout=10)
            if isinstance(message, bytes):
                slow_frames += 1
                continue
            data = json.loads(message)
            if data["type"] == "alert":
                seen.add(data["seq"])
    assert set(range(hello["last_seq"] + 1, target + 1)) <= seen
    assert slow_frames < fast_frames[0]
    # the clip looped (a gap) at least once meanwhile, and scoring went on without an error
    ready = server.get_json("/readyz")
    assert ready["ready"] and ready["inference_error"] is None
