#!/bin/sh
# Make sure a Chromium that Playwright can drive is installed: Debian's `chromium` package.
# (Playwright's own browser download needs hosts this kind of machine cannot reach.)
set -e
if [ -n "${CHROMIUM_PATH:-}" ] && [ -x "$CHROMIUM_PATH" ]; then exit 0; fi
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
      echo "Chromium is missing: install Debian's 'chromium' package as root (apt-get install chromium)" >&2; exit 1
    fi
  fi
  echo "[memory] installing Debian's chromium for the browser tests" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "Chromium is missing and apt-get is not available: install Chromium and set CHROMIUM_PATH to its binary" >&2
exit 1
