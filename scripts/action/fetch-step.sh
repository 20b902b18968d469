#!/usr/bin/env bash
# Step 2 of action.yml: the credential, then fetch-secrets.mjs.
# - oidc: true (workload identity, no stored credential): the job's ID token (the job needs
#   `permissions: id-token: write`) is exchanged once by `secrets login --oidc` for a
#   short-lived credential, kept in a profile in a private directory under RUNNER_TEMP that
#   is deleted when the step ends.
# - otherwise the access-key input, written to an owner-only file for the same lifetime.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# The environment input: every CLI call below addresses it (secrets --env, via SECRETS_ENV).
if [ -n "${INPUT_ENVIRONMENT:-}" ]; then export SECRETS_ENV="$INPUT_ENVIRONMENT"; fi
if [ "${INPUT_OIDC:-false}" = "true" ]; then
  cfg="$(mktemp -d "${RUNNER_TEMP:-/tmp}/secrets-oidc.XXXXXX")"
  trap 'rm -rf "$cfg"' EXIT
  export XDG_CONFIG_HOME="$cfg"
  if [ -n "${INPUT_OIDC_AUDIENCE:-}" ]; then export SECRETS_OIDC_AUDIENCE="$INPUT_OIDC_AUDIENCE"; fi
  if [ -n "${INPUT_OIDC_TRUST:-}" ]; then export SECRETS_OIDC_TRUST="$INPUT_OIDC_TRUST"; fi
  "${SECRETS_CLI:-secrets}" login --oidc --quiet
  node "$here/fetch-secrets.mjs"
  exit
fi
if [ -z "${ACCESS_KEY:-}" ]; then
  echo "::error::give the access-key input, or set oidc: true (and permissions: id-token: write) to use no stored credential"
  exit 1
fi
echo "::add-mask::$ACCESS_KEY"
token_file="$(mktemp "${RUNNER_TEMP:-/tmp}/secrets-token.XXXXXX")"
trap 'rm -f "$token_file"' EXIT
chmod 600 "$token_file"
printf '%s' "$ACCESS_KEY" > "$token_file"
unset ACCESS_KEY
SECRETS_TOKEN_FILE="$token_file" node "$here/fetch-secrets.mjs"
