#!/usr/bin/env bash
# Step 1 of action.yml: puts the `secrets` CLI on PATH. With CLI_PACKAGE (a registry spec
# or a tarball URL) it installs that; otherwise it packs this checkout of the action
# (npm pack builds dist/ in prepack) and installs the tarball, as a user would.
set -euo pipefail
if [ -n "${CLI_PACKAGE:-}" ]; then
  npm install --global --no-audit --no-fund "$CLI_PACKAGE"
else
  here="$(cd "$(dirname "$0")/../.." && pwd)"
  dest="${RUNNER_TEMP:-$(mktemp -d)}"
  (cd "$here" && npm ci --no-audit --no-fund >/dev/null && npm pack --silent --pack-destination "$dest" >/dev/null)
  npm install --global --no-audit --no-fund "$dest"/secrets-service-*.tgz
fi
secrets --version
