#!/usr/bin/env bash
# System packages some tests need: Debian's Chromium for the web page's browser test.
# Without root (or apt), nothing is installed and those tests skip with a stated reason.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
    echo "ci/system-deps.sh: chromium not installed and no root apt-get; browser tests will be skipped" >&2
fi
