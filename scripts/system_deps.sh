#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Debian's Chromium for the viewer test
# (Playwright drives it; no browser is downloaded) and GStreamer's RTSP server, run by
# scripts/rtsp_server.py with Debian's own python3 (it needs `gi`), for the RTSP tests, and the
# mosquitto MQTT broker the alert-sink tests start (with openssl to make their TLS certificates),
# and the PostgreSQL server the cluster mode's event store tests start (tests/pg_server.py).
# Run as root (CI) or with sudo; it only installs what is missing, so it is cheap to run again.
set -euo pipefail
packages=(chromium chromium-driver python3-gi gir1.2-gst-rtsp-server-1.0
          gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
          gstreamer1.0-libav mosquitto openssl postgresql)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
        || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system_deps: ${missing[*]} missing; run this as root (or: sudo $0)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
