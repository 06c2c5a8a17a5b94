#!/bin/sh
# Make sure Debian's Chromium is installed for the browser tests (tests/e2e).
# Playwright drives this system browser; its own browser downloads are never used.
# Usage: scripts/ensure-chromium.sh   (prints the browser's path; exit 1 if it cannot)
set -eu

CHROMIUM="${SWITCHBOARD_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    echo "$CHROMIUM"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM is missing and apt-get is not available;" \
        "install Chromium and set SWITCHBOARD_CHROMIUM to its path" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure-chromium: installing chromium needs root (or sudo)" >&2
        exit 1
    fi
fi

echo "ensure-chromium: installing Debian's chromium with apt-get" >&2
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >&2

if [ ! -x "$CHROMIUM" ]; then
    echo "ensure-chromium: chromium installed but $CHROMIUM is not there;" \
        "set SWITCHBOARD_CHROMIUM" >&2
    exit 1
fi
echo "$CHROMIUM"
