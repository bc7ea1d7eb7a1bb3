#!/usr/bin/env bash
# Installs Debian's chromium (used by the browser tests through Playwright's
# Python API with executable_path, so Playwright never downloads a browser).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "Chromium est requis pour les tests navigateur : installez le paquet Debian 'chromium' (apt-get install chromium)." >&2
    exit 1
  fi
fi
echo "Installation de Chromium (paquet Debian) pour les tests navigateur…"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-dejavu-core fonts-noto-color-emoji >/dev/null
command -v chromium >/dev/null
