#!/usr/bin/env bash
# Debian's chromium for the browser tests (the report, web UIs), from the package
# registry: installed with apt-get when it is missing and apt-get is there.
# Playwright drives it (executable_path=/usr/bin/chromium); no browser is ever downloaded.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: /usr/bin/chromium is missing and there is no apt-get; browser tests will be skipped" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "note: /usr/bin/chromium is missing and apt-get needs root; browser tests will be skipped" >&2
        exit 0
    fi
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
echo "installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
