"""PostgresServer: a real, throwaway PostgreSQL server for the tests (Debian's `postgresql`).

It lives in one folder: the cluster in `data/`, its unix socket beside it, its log in
`postgres.log`. It listens on 127.0.0.1 only, on a port chosen once (a restart keeps it, so
clients reconnect to the same URL), and trusts every local connection: it holds nothing but
test data. fsync is off: a test never survives an OS crash, and it makes initdb and commits
fast.

initdb and postgres refuse to run as root, and CI runs as root: the server then runs as the
`postgres` system user (which Debian's package creates), and its folder is handed to that
user, so the folder's parents must let it in (`tempfile.mkdtemp()` under /tmp does; pytest's
own tmp_path under /tmp/pytest-of-root does not).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT_S = 30.0
SERVER_USER = "postgres"
DEFAULT_BIN_ROOT = Path("/usr/lib/postgresql")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed here."""


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: $CLIPWATCH_PG_BIN, else the newest Debian
    version, else whatever is on PATH; None when there is none."""
    configured = os.environ.get("CLIPWATCH_PG_BIN")
    candidates = [Path(configured)] if configured else []
    if DEFAULT_BIN_ROOT.is_dir():
        versions = [p / "bin" for p in DEFAULT_BIN_ROOT.iterdir() if p.name.isdigit()]
        candidates += sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).resolve()
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.bin = postgres_bin()
        if self.bin is None:
            raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                                      "install Debian's postgresql package "
                                      "(scripts/system_deps.sh) or set CLIPWATCH_PG_BIN")
        # The socket path must fit in sun_path (107 bytes) with its file name.
        if len(str(self.folder / ".s.PGSQL.65535")) > 100:
            raise ValueError(f"{self.folder} is too long a path for a unix socket")
        self.port = free_port()  # kept by restarts: clients reconnect to the same URL
        self.host = "127.0.0.1"
        self.url = self.database_url("postgres")
        self._as_postgres = os.geteuid() == 0  # root: initdb and postgres run as `postgres`

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{name}"

    # -- running the binaries ------------------------------------------------------------

    def _run(self, *args: str, check: bool = True,
             timeout: float = 60.0) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        run = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check and run.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({run.returncode}): "
                               f"{(run.stderr or run.stdout).strip()[-2000:]}\n"
                               f"{self.log_tail()}")
        return run

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return f"(no server log at {self.log})"
        return "server log, last lines:\n" + "\n".join(text.splitlines()[-lines:])

    def _initdb(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.folder, SERVER_USER, SERVER_USER)
            self.folder.chmod(0o700)
        # --no-sync: a throwaway cluster needs no fsync at creation either.
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.folder}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "'32MB'",
            "max_connections": "100",
            "log_min_messages": "warning",
        }
        conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        self._write_as_owner(self.data / "postgresql.conf", conf, append=True)
        self._write_as_owner(self.data / "pg_hba.conf",
                             "local all all trust\nhost all all 127.0.0.1/32 trust\n")

    def _write_as_owner(self, path: Path, text: str, append: bool = False) -> None:
        with open(path, "a" if append else "w") as fh:
            fh.write(text)
        if self._as_postgres:
            shutil.chown(path, SERVER_USER, SERVER_USER)

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Start the server (creating its cluster the first time) and wait until it accepts
        connections on its TCP port."""
        if not (self.data / "PG_VERSION").is_file():
            self._initdb()
        # -W: pg_ctl does not wait; we wait for the TCP port itself, with our own deadline.
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-W", "start")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.accepting():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not accept connections on {self.host}:{self.port} "
                           f"within {START_TIMEOUT_S:.0f} s\n{self.log_tail()}")

    def accepting(self) -> bool:
        """Whether the server accepts connections now (pg_isready over TCP)."""
        run = subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", self.host,
                              "-p", str(self.port), "-U", "postgres", "-t", "2"],
                             capture_output=True, timeout=10)
        return run.returncode == 0

    def running(self) -> bool:
        if not (self.data / "PG_VERSION").is_file():
            return False
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: 'smart' waits for clients, 'fast' disconnects them, 'immediate'
        kills it (crash recovery at the next start). A server not running is left alone."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown stop mode {mode!r} (smart, fast or immediate)")
        if not self.running():
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, mode: str = "fast") -> PostgresServer:
        """Stop, then start again: the same port, the same data."""
        self.stop(mode)
        return self.start()

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        if not name.replace("_", "").isalnum() or not name[0].isalpha() or len(name) > 63:
            raise ValueError(f"not a plain database name: {name!r}")
        self._run("createdb", "-h", self.host, "-p", str(self.port), "-U", "postgres", name)
        return self.database_url(name)
