#!/usr/bin/env bash
# Installs Debian's redis-server, postgresql and nginx, which the shared-state tests start
# themselves on free ports in temporary folders (installing starts none of them here).
# Idempotent: returns at once when all three are present.
set -euo pipefail
have_postgres() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
if command -v redis-server >/dev/null 2>&1 && have_postgres \
  && { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "Redis, PostgreSQL et nginx sont requis pour les tests multi-processus : installez les paquets Debian 'redis-server postgresql nginx' (apt-get install redis-server postgresql nginx)." >&2
    exit 1
  fi
fi
echo "Installation de Redis, PostgreSQL et nginx (paquets Debian) pour les tests multi-processus…"
$SUDO apt-get update -qq
# policy-rc.d 101: the packages' post-install scripts must not start system services.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
  CREATED_POLICY=1
fi
trap '[ -n "$CREATED_POLICY" ] && $SUDO rm -f "$POLICY"' EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server postgresql nginx >/dev/null
command -v redis-server >/dev/null && { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } && have_postgres
