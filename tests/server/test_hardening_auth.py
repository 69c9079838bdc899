"""Attacks on sign-in against a real `clipwatch serve` on loopback, while a camera scores.

- A login flood (8 parallel guessers on one account from one address) is answered 429 with
  Retry-After once the name's free failures are spent: no more passwords are checked, so
  the camera keeps its scoring pace. The right password works again after the wait, and
  another account, from another address, is never held up.
- Many addresses guessing many names at once (each under its own limits) find the
  password checker's queue full and are refused at once (503 with Retry-After): the checker
  is one low-priority thread, so scoring keeps its pace here too.
- A PBKDF2 hash (earlier versions) still signs in, and is replaced in the config file by
  argon2id at that sign-in.
- A refused body is never echoed in the 422; logout clears the cookie with the session
  cookie's own attributes (HttpOnly, SameSite=Strict, Path=/).

Loopback is all of 127.0.0.0/8 on Linux, so a test client binds 127.0.0.x to be another
address. Scoring rates are compared with the same camera's rate just before each attack
(equal windows), so they hold on a slow or shared machine.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import secrets
import threading
import time

import pytest
from server_helpers import (
    ServerProcess,
    free_port,
    ped2_clip01,
    replay_camera,
    wait_for,
    write_config,
)

from clipwatch.config import ApiToken, AuthConfig, UserAccount, load_config
from clipwatch.server.auth import SESSION_COOKIE, hash_password, hash_token

ADMIN_TOKEN = "admin-token-0123456789abcdef"
PASSWORDS = {"alice": "correct horse", "bob": "battery staple", "carol": "legacy pass",
             "dave": "night shift"}
WINDOW_S = 8.0  # each scoring-rate window (before, during)
FLOOD_THREADS = 8
MIN_RATE_KEPT = 0.6  # of the camera's scored frames per window, during an attack vs before
ACCOUNT_FAILURES = 5  # the default limit (config: auth.login.account_failures)


def pbkdf2_hash(password: str, iterations: int = 200_000) -> str:
    """A hash as earlier versions of clipwatch wrote it."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


@pytest.fixture(scope="module")
def server(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hardening_auth")
    # The demo camera's load: 10 frames/s, every frame scored (stride 1).
    camera = replay_camera(ped2_clip01(shared_data), loop=True, fps=10.0, stride=1)
    users = [UserAccount(name=name, password=hash_password(password))
             for name, password in PASSWORDS.items() if name != "carol"]
    users.append(UserAccount(name="carol", password=pbkdf2_hash(PASSWORDS["carol"])))
    auth = AuthConfig(tokens=[ApiToken(name="ops", sha256=hash_token(ADMIN_TOKEN),
                                       role="admin")], users=users)
    path = write_config(folder, [camera], auth=auth)
    process = ServerProcess(path, free_port(), folder / "serve.log").start()
    wait_for(lambda: scored(process) > 30, 90, what="the camera scoring")
    yield process
    process.stop()


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def json(self):
        return json.loads(self.body)


def request(server: ServerProcess, method: str, path: str, body: dict | None = None,
            source: str = "127.0.0.1", headers: dict | None = None,
            conn: http.client.HTTPConnection | None = None) -> Reply:
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30,
                                          source_address=(source, 0))
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={
            "Content-Type": "application/json", **(headers or {})})
        return Reply(conn.getresponse())
    finally:
        if own:
            conn.close()


def login(server, name: str, password: str, source: str = "127.0.0.1", conn=None) -> Reply:
    return request(server, "POST", "/api/login", {"name": name, "password": password}, source,
                   conn=conn)


def scored(server: ServerProcess) -> int:
    reply = request(server, "GET", "/api/cameras/ped2",
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reply.status == 200, reply.body
    return reply.json()["frames_scored"]


def scored_in(server: ServerProcess, seconds: float) -> int:
    start = scored(server)
    time.sleep(seconds)
    return scored(server) - start


def flood(server, attempt, threads: int, seconds: float) -> tuple[list[tuple], int]:
    """`attempt(thread, n, conn)` from `threads` threads for `seconds`, each waiting for its
    answer before the next (as the issue's attack did); returns every (status, Retry-After,
    seconds taken) and the camera's frames scored meanwhile."""
    results: list[tuple] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def guesser(thread: int) -> None:
        conn, n = None, 0
        while time.monotonic() < deadline:
            if conn is None:
                conn = attempt.connect(thread)
            started = time.monotonic()
            try:
                reply = attempt(thread, n, conn)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = None
                continue
            with lock:
                results.append((reply.status, reply.headers.get("Retry-After"),
                                time.monotonic() - started))
            n += 1
        if conn is not None:
            conn.close()

    start = scored(server)
    workers = [threading.Thread(target=guesser, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results, scored(server) - start


class Guess:
    """Wrong passwords for one name, from one address (a connection per thread)."""

    def __init__(self, server, name: str, source: str = "127.0.0.1",
                 sources: list[str] | None = None, names: bool = False) -> None:
        self.server, self.name, self.sources, self.names = server, name, sources, names
        self.source = source

    def connect(self, thread: int) -> http.client.HTTPConnection:
        source = self.sources[thread % len(self.sources)] if self.sources else self.source
        return http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30,
                                          source_address=(source, 0))

    def __call__(self, thread: int, n: int, conn) -> Reply:
        name = f"{self.name}{thread}-{n}" if self.names else self.name
        return login(self.server, name, f"guess {thread}-{n}", conn=conn)


def test_a_login_flood_is_answered_429_and_scoring_keeps_its_pace(server):
    before = scored_in(server, WINDOW_S)
    results, during = flood(server, Guess(server, "alice"), FLOOD_THREADS, WINDOW_S)
    statuses = [status for status, _, _ in results]
    checked = statuses.count(401)
    refused = [(status, retry) for status, retry, _ in results if status in (429, 503)]
    summary = (f"{len(results)} attempts in {WINDOW_S:g} s: {checked} checked (401), "
               f"{statuses.count(429)} 429, {statuses.count(503)} 503; camera scored "
               f"{before} frames before, {during} during ({during / max(before, 1):.2f}x)")
    print(summary)
    assert len(results) >= 100, summary  # a flood, not a trickle
    assert set(statuses) <= {401, 429, 503}, summary
    # 5 free failures, then one try per wait (1, 2, 4 s ... within the window)
    assert 1 <= checked <= ACCOUNT_FAILURES + 4, summary
    assert statuses.count(429) >= len(results) - checked - statuses.count(503) > 0, summary
    assert all(retry and int(retry) >= 1 for _, retry in refused), summary
    assert during >= MIN_RATE_KEPT * before, summary

    # The account waits, whoever asks and whatever the password (a guess that would be right
    # gets no different answer while it waits). One more wrong guess first: should the flood
    # have ended just as a wait did, it is checked and starts the next wait.
    assert login(server, "alice", "one more guess", source="127.0.0.3").status in (401, 429)
    locked = login(server, "alice", PASSWORDS["alice"], source="127.0.0.3")
    assert locked.status == 429 and int(locked.headers["Retry-After"]) >= 1
    # ...another account, from another address, signs in at once...
    assert login(server, "bob", PASSWORDS["bob"], source="127.0.0.2").status == 200
    # ...and after the wait the right password works, and clears the name's failures.
    time.sleep(int(locked.headers["Retry-After"]))
    assert login(server, "alice", PASSWORDS["alice"], source="127.0.0.3").status == 200
    assert login(server, "alice", "wrong again", source="127.0.0.3").status == 401


def test_many_addresses_guessing_at_once_find_the_checker_busy_not_the_cpu(server):
    sources = [f"127.0.1.{n}" for n in range(1, 2 * FLOOD_THREADS + 1)]  # one per guesser
    before = scored_in(server, WINDOW_S)
    results, during = flood(server, Guess(server, "nobody", sources=sources, names=True),
                            2 * FLOOD_THREADS, WINDOW_S)
    statuses = [status for status, _, _ in results]
    busy = [(retry, took) for status, retry, took in results if status == 503]
    summary = (f"{len(results)} attempts: {statuses.count(401)} checked (401), "
               f"{statuses.count(429)} 429, {len(busy)} 503; camera scored {before} frames "
               f"before, {during} during ({during / max(before, 1):.2f}x)")
    print(summary)
    assert set(statuses) <= {401, 429, 503}, summary
    assert len(busy) >= len(results) // 4, summary  # most wait no turn: refused at once
    assert all(retry and int(retry) >= 1 for retry, _ in busy), summary
    assert sorted(took for _, took in busy)[len(busy) // 2] < 0.5, summary
    assert during >= MIN_RATE_KEPT * before, summary


def test_a_pbkdf2_hash_signs_in_and_is_upgraded_to_argon2id_in_the_config(server):
    def stored() -> str:
        users = load_config(server.config_path).auth.users
        return next(u.password for u in users if u.name == "carol")

    assert stored().startswith("pbkdf2_sha256$")
    assert login(server, "carol", PASSWORDS["carol"], source="127.0.0.4").status == 200
    upgraded = stored()
    assert upgraded.startswith("$argon2id$"), upgraded
    assert login(server, "carol", PASSWORDS["carol"], source="127.0.0.4").status == 200
    assert stored() == upgraded  # upgraded once
    assert login(server, "carol", "not it", source="127.0.0.4").status == 401


def test_a_refused_login_body_is_not_echoed(server):
    secret = "S3cr3t-" + secrets.token_hex(8) + "x" * 277  # 300 characters
    too_long = request(server, "POST", "/api/login", {"name": "dave", "password": secret},
                       source="127.0.0.5")
    assert too_long.status == 422
    assert secret[:16].encode() not in too_long.body
    assert too_long.json()["detail"][0]["loc"] == ["body", "password"]  # still says where
    extra = request(server, "POST", "/api/login", {"name": "dave", "password": "night shift",
                                                   "otp": "otp-" + secret[:20]},
                    source="127.0.0.5")
    assert extra.status == 422 and secret[:16].encode() not in extra.body


def test_logout_clears_the_cookie_with_the_session_cookies_attributes(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30,
                                      source_address=("127.0.0.6", 0))
    try:
        signed_in = login(server, "dave", PASSWORDS["dave"], conn=conn)
        assert signed_in.status == 200
        cookie = signed_in.headers["Set-Cookie"].split(";")[0]
        out = request(server, "POST", "/api/logout", headers={"Cookie": cookie}, conn=conn)
    finally:
        conn.close()
    assert out.status == 204
    cleared = out.headers["Set-Cookie"]
    attributes = {part.strip().split("=")[0].lower(): part.strip()
                  for part in cleared.split(";")[1:]}
    assert cleared.startswith(f'{SESSION_COOKIE}=""') or cleared.startswith(f"{SESSION_COOKIE}=;")
    assert attributes["samesite"].lower() == "samesite=strict", cleared
    assert "httponly" in attributes and attributes["path"] == "Path=/", cleared
    assert attributes["max-age"] == "Max-Age=0", cleared


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_backs_off_counts_attempts_in_flight_and_stays_bounded():
    from clipwatch.config import LoginLimits
    from clipwatch.server.login_limits import LoginLimiter, TooManyAttempts

    clock = FakeClock()
    limiter = LoginLimiter(LoginLimits(account_failures=2, address_failures=100,
                                       backoff_s=1, backoff_max_s=8), max_keys=50, clock=clock)
    # two tries may be in flight for a name with two failures left; a third waits for them
    limiter.begin("alice", "10.0.0.1", known=True)
    limiter.begin("alice", "10.0.0.2", known=True)
    with pytest.raises(TooManyAttempts):
        limiter.begin("alice", "10.0.0.3", known=True)
    limiter.end("alice", "10.0.0.1", known=True, ok=False)
    limiter.end("alice", "10.0.0.2", known=True, ok=False)
    waits = []
    for _ in range(5):  # each further failure doubles the wait, up to the longest
        with pytest.raises(TooManyAttempts) as refused:
            limiter.begin("alice", "10.0.0.1", known=True)
        waits.append(refused.value.retry_after)
        clock.now += refused.value.retry_after
        limiter.begin("alice", "10.0.0.1", known=True)
        limiter.end("alice", "10.0.0.1", known=True, ok=False)
    assert waits == [1, 2, 4, 8, 8]
    clock.now += 8
    limiter.begin("alice", "10.0.0.1", known=True)  # a success clears the name's failures
    limiter.end("alice", "10.0.0.1", known=True, ok=True)
    for _ in range(2):
        limiter.begin("alice", "10.0.0.1", known=True)
        limiter.end("alice", "10.0.0.1", known=True, ok=False)
    with pytest.raises(TooManyAttempts):
        limiter.begin("alice", "10.0.0.1", known=True)
    clock.now += 1 + 8 + 1  # quiet for longer than the longest wait: forgotten
    limiter.begin("alice", "10.0.0.1", known=True)
    limiter.end("alice", "10.0.0.1", known=True, ok=None)  # not checked: not counted
    # made-up names and addresses are bounded (least recently used dropped) and cannot push
    # a real account's count out
    for n in range(500):
        limiter.begin(f"made-up-{n}", f"10.1.{n // 250}.{n % 250}", known=False)
        limiter.end(f"made-up-{n}", f"10.1.{n // 250}.{n % 250}", known=False, ok=False)
    assert len(limiter._names.counts) <= 50 and len(limiter._addresses.counts) <= 50
    limiter.begin("alice", "10.0.0.9", known=True)
    limiter.end("alice", "10.0.0.9", known=True, ok=False)
    assert limiter._accounts.counts["alice"].failures == 1


def test_argon2id_parameters_and_legacy_hashes():
    from clipwatch.server.passwords import check, hash_password, needs_rehash, verify_password

    new = hash_password("correct horse")
    assert new.startswith("$argon2id$v=19$m=19456,t=2,p=1$") and not needs_rehash(new)
    assert verify_password("correct horse", new) and not verify_password("wrong", new)
    old = pbkdf2_hash("correct horse", iterations=1000)
    assert verify_password("correct horse", old) and needs_rehash(old)
    assert check("wrong", old) == (False, None)
    ok, rehashed = check("correct horse", old)
    assert ok and rehashed.startswith("$argon2id$") and verify_password("correct horse", rehashed)
    assert not verify_password("x", "garbage") and check("x", None) == (False, None)
    UserAccount(name="x", password=new)  # the config takes both forms
    UserAccount(name="x", password=old)


def test_a_forged_forwarded_for_header_does_not_dodge_the_address_limit(server):
    """uvicorn trusts X-Forwarded-For from loopback by default: each guess claiming another
    address would start that address's count afresh. The service turns that off."""
    source = "127.0.0.1"  # the one address uvicorn would take the header from
    statuses = []
    for k in range(24):  # made-up names: only the address's limit (20) can stop them
        reply = request(server, "POST", "/api/login",
                        {"name": f"nobody{k}", "password": "wrong"}, source,
                        headers={"X-Forwarded-For": f"10.9.{k}.1"})
        statuses.append(reply.status)
    # Counted as 127.0.0.1 (perhaps partly spent by earlier tests): held up by 20 at most;
    # counted by the forged addresses, all 24 would be checked (401).
    assert 429 in statuses[:21] and set(statuses) <= {401, 429}
