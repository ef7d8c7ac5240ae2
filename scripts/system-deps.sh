#!/usr/bin/env bash
# Install the system programs the tests talk to, when missing: redis-server (Debian's is built with TLS), openssl
# (the TLS tests make a throwaway CA with it), luacheck (Debian package lua-check, for the Lua scripts),
# chromium for the dashboard tests and axe-core (npm, tests/node) that they inject.
set -euo pipefail
# another apt-get or unattended-upgrades may hold the dpkg lock: wait for it instead of failing at once
apt=(apt-get -o DPkg::Lock::Timeout=300)
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v luacheck >/dev/null 2>&1 || need+=(lua-check)
if [ -f tests/test_web.py ] && ! command -v chromium >/dev/null 2>&1; then need+=(chromium); fi
axe=false
if [ -f tests/node/package.json ] && [ ! -f tests/node/node_modules/axe-core/axe.min.js ]; then
  axe=true
  command -v npm >/dev/null 2>&1 || need+=(npm)
fi
install_axe() { if $axe; then npm install --prefix tests/node --no-audit --no-fund --no-package-lock --silent; fi; }
if [ ${#need[@]} -eq 0 ]; then install_axe; exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing ${need[*]} with apt-get" >&2
  "${apt[@]}" update -qq && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${need[@]}" >/dev/null
elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
  sudo "${apt[@]}" update -qq && sudo DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${need[@]}" >/dev/null
else
  echo "missing: ${need[*]}. Install them (Debian/Ubuntu: apt-get install ${need[*]}; macOS: brew install redis luacheck chromium)" >&2
  exit 1
fi
install_axe
