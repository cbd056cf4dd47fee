#!/bin/sh
# Install Debian's Chromium for the browser tests (Playwright's own download is
# blocked on these machines). Does nothing when /usr/bin/chromium exists.
set -e
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else
  echo "install-chromium: not root and no sudo: browser tests will be skipped" >&2; exit 0
fi
if command -v apt-get >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
else
  echo "install-chromium: no apt-get: install Chromium yourself; browser tests will be skipped" >&2
fi
