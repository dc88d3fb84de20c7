#!/bin/sh
# Make sure the system has the en_US.UTF-8 locale: a test gives LangGraph's pending writes that collation, the
# default of the pgvector image's databases, whose order is not Python's (the embedded PostgreSQL has no ICU).
# Generated with localedef when it is missing (as root or through sudo). Without it, that one test fails and
# says how to generate it.
if locale -a 2>/dev/null | grep -qix 'en_US.utf8'; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "[memory] en_US.UTF-8 locale missing (generate it as root: localedef -i en_US -f UTF-8 en_US.UTF-8)" >&2
    exit 0
  fi
fi
if [ ! -e /usr/share/i18n/locales/en_US ] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq locales >/dev/null 2>&1 || true
fi
echo "[memory] generating the en_US.UTF-8 locale for the collation tests" >&2
$SUDO localedef -i en_US -f UTF-8 en_US.UTF-8 >/dev/null 2>&1 || \
  echo "[memory] could not generate en_US.UTF-8: the collation test will fail" >&2
exit 0
