"""Real receivers for the alert-sink tests: Debian's mosquitto broker, an MQTT subscriber
(paho-mqtt, as a site's integration would use) and a local HTTP server that checks webhook
signatures and can be told to fail (500) or hang.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import pytest
from server_helpers import free_port, wait_for

from clipwatch.server.sinks.payload import SIGNATURE_HEADER, verify

MOSQUITTO = Path(shutil.which("mosquitto") or "/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = Path(shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd")


def need_mosquitto() -> None:
    if not MOSQUITTO.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{MOSQUITTO} missing in CI (scripts/system_deps.sh installs mosquitto)")
        pytest.skip("mosquitto is not installed (scripts/system_deps.sh)")


class TlsFiles(NamedTuple):
    ca: Path  # the CA certificate a client trusts
    cert: Path  # the server's, for localhost and 127.0.0.1, signed by the CA
    key: Path


def make_tls_files(folder: Path) -> TlsFiles:
    """A throwaway CA and a server certificate signed by it (the openssl command)."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
            "/CN=clipwatch test CA", "-keyout", "ca.key", "-out", "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")
    (folder / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                       "basicConstraints=CA:FALSE\n"
                                       "keyUsage=digitalSignature,keyEncipherment\n"
                                       "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", "server.pem", "-extfile", "server.ext")
    return TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")


class Mosquitto:
    """A mosquitto broker on 127.0.0.1, stopped and started again on the same port. It keeps
    its sessions on disk (persistence), as a production broker would, so a subscriber with a
    persistent session misses nothing across a restart."""

    def __init__(self, folder: Path, port: int | None = None, tls: TlsFiles | None = None,
                 users: dict[str, str] | None = None) -> None:
        need_mosquitto()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config = folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "persistence true",
                 f"persistence_location {folder}/", f"user {getpass.getuser()}"]
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        if users:
            passwords = folder / "passwords"
            for n, (name, password) in enumerate(users.items()):
                subprocess.run([str(MOSQUITTO_PASSWD), *(["-c"] if n == 0 else []), "-b",
                                str(passwords), name, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.config.write_text("\n".join(lines) + "\n")
        self.log = folder / "mosquitto.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([str(MOSQUITTO), "-c", str(self.config), "-v"],
                                            stdout=log, stderr=subprocess.STDOUT)

        def listening() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"mosquitto exited: {self.log.read_text()[-1500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_for(listening, 10, interval=0.05, what=f"mosquitto on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class MqttSubscriber:
    """Subscribes to `pattern` with QoS 1 in a persistent session, reconnecting by itself;
    records (arrival time, topic, message)."""

    def __init__(self, port: int, pattern: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.pattern = pattern
        self.received: list[tuple[float, str, dict]] = []
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}",
                                  clean_session=False)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe(self.pattern, qos=1)
        self.connected.set()

    def _on_message(self, client, userdata, message) -> None:
        self.received.append((time.time(), message.topic, json.loads(message.payload)))

    def start(self) -> MqttSubscriber:
        self.client.loop_start()
        assert self.connected.wait(10), "the test subscriber could not connect"
        time.sleep(0.2)  # the SUBACK
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class WebhookReceiver:
    """A local HTTP server for webhooks. `mode`: 'ok' (204), 'fail' (500) or 'hang' (reads
    the request, never answers until `mode` changes). Records every accepted message with
    its arrival time and whether its signature verified; counts the refused ones."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.mode = "ok"
        self.accepted: list[tuple[float, dict, bool, dict]] = []  # time, body, signed ok, hdrs
        self.refused = 0
        self.hung = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrived = time.time()
                if receiver.mode == "hang":
                    receiver.hung += 1
                    while receiver.mode == "hang":
                        time.sleep(0.05)
                    return  # the client gave up long ago: close without an answer
                if receiver.mode == "fail":
                    receiver.refused += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                ok = verify(receiver.secret, body, self.headers.get(SIGNATURE_HEADER, ""))
                receiver.accepted.append((arrived, json.loads(body), ok, dict(self.headers)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/clipwatch"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def messages(self, type_: str = "alert") -> list[dict]:
        return [body for _, body, _, _ in self.accepted if body["type"] == type_]

    def close(self) -> None:
        self.mode = "ok"
        self.server.shutdown()
        self.server.server_close()
