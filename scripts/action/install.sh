#!/usr/bin/env bash
# Step 1 of action.yml: puts the `secrets` CLI on PATH. With CLI_PACKAGE (a registry spec
# or a tarball URL) it installs that; otherwise it builds this checkout of the action (dist/
# for the fetch step, and the light CLI package: one file, no dependencies, no server) and
# installs the light CLI's tarball, as a user would.
set -euo pipefail
if [ -n "${CLI_PACKAGE:-}" ]; then
  npm install --global --no-audit --no-fund "$CLI_PACKAGE"
else
  here="$(cd "$(dirname "$0")/../.." && pwd)"
  dest="${RUNNER_TEMP:-$(mktemp -d)}"
  (cd "$here" && npm ci --no-audit --no-fund >/dev/null && npm run -s build >/dev/null && npm run -s build:cli >/dev/null &&
    cd packages/cli && npm pack --ignore-scripts --silent --pack-destination "$dest" >/dev/null)
  npm install --global --no-audit --no-fund "$dest"/secrets-service-cli-*.tgz
fi
secrets --version
