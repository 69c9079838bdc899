"""What a camera added or changed through the API may read.

The API is the one way in for someone who is not the machine's operator (an admin account,
a stolen token), so its cameras are held to `server`'s rules: the kinds in `allowed_sources`;
files and folders only inside `allowed_dirs` (when set), and never a FIFO or a device; streams
never to `denied_networks` (this host and link-local by default) unless `allowed_networks`
says so. A refused host gets one message whatever is (or is not) listening there, and no
connection is tried, so the API cannot be used to map the server's own ports or disk.
Cameras in the config file are the operator's and are not checked here (FIFOs and devices are
refused for them too, by the config and the sources themselves).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from clipwatch.config import ServerConfig
from clipwatch.errors import ClipwatchError
from clipwatch.stream.local_files import special_file_problem
from clipwatch.stream.sources import STREAM_SCHEMES, source_kind

HOST_REFUSED = "source: this host may not be read by cameras added through the API " \
               "(server.denied_networks)"
DIR_REFUSED = "source: files and folders must be inside server.allowed_dirs"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SourceRefused(ClipwatchError):
    """The source is not one the server allows cameras added through the API to read."""


def check_api_source(source: str, server: ServerConfig) -> None:
    """Raise SourceRefused when a camera added through the API may not read `source`. A
    stream's host name that does not resolve now passes: the grabber checks again at each
    connect, as it does for every camera added through the API."""
    kind = source_kind(source)
    if kind not in server.allowed_sources:
        raise SourceRefused(f"source: {kind!r} sources are not allowed here "
                            f"(allowed: {', '.join(server.allowed_sources)})")
    if kind in STREAM_SCHEMES:
        _check_host(source, server)
    elif kind == "file":
        _check_path(source, server)


def _check_path(source: str, server: ServerConfig) -> None:
    if server.allowed_dirs is not None:
        real = os.path.realpath(source)
        if not any(_inside(real, os.path.realpath(d)) for d in server.allowed_dirs):
            raise SourceRefused(DIR_REFUSED)
    problem = special_file_problem(source)
    if problem:
        raise SourceRefused(f"source: {problem}")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_host(source: str, server: ServerConfig) -> None:
    try:
        host = urlsplit(source).hostname
    except ValueError:
        host = None
    if not host:
        raise SourceRefused("source: a stream URL needs a host")
    for address in resolved_addresses(host):
        if denied_address(address, server):
            raise SourceRefused(HOST_REFUSED)


def resolved_addresses(host: str) -> list[IPAddress]:
    """Every address `host` stands for, as the decoder's own resolver would find them: the
    system resolver also reads 2130706433 and 0x7f.1 as 127.0.0.1. A name that does not
    resolve now yields none (it is checked again at each connect)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            found.append(address.ipv4_mapped)
        found.append(address)
    return found


def denied_address(address: IPAddress, server: ServerConfig) -> bool:
    def within(networks: list[str]) -> bool:
        nets = (ipaddress.ip_network(n) for n in networks)
        return any(address.version == net.version and address in net for net in nets)

    return within(server.denied_networks) and not within(server.allowed_networks)
