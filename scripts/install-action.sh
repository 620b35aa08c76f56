#!/usr/bin/env bash
# Install ml-cicd from this action's own checkout (so the action ref IS the code version) into a
# private venv under $RUNNER_TEMP, never touching the job's Python. Reuses the venv when it was
# built from the same source and already has the extra. Env: MLCI_EXTRA (pip extra; "core" for
# none), or MLCI_STAGE + MLCI_EXTRAS ("stage=extra ..." as the root action passes them), and
# MLCI_PYTHON (interpreter to build the venv from, default python3). Writes venv=<path> to $GITHUB_OUTPUT.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mlci-venv"
python="${MLCI_PYTHON:-python3}"
extra="${MLCI_EXTRA:-core}"
for pair in ${MLCI_EXTRAS:-}; do
  if [[ "${pair%%=*}" == "${MLCI_STAGE:-}" ]]; then extra="${pair#*=}"; fi
done
[[ "$extra" =~ ^[a-z0-9,-]*$ ]] || { echo "::error::invalid MLCI_EXTRA '$extra'"; exit 2; }
[[ "$extra" == core ]] && extra=""

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "::error title=ml-cicd::needs Python 3.11+ ($python is older or missing); add actions/setup-python before this step"
  exit 2
fi
# The source revision: a hash of what pip installs (the checkout need not be a git repository).
rev="$(cd "$root" && find pyproject.toml src/mlcicd -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z \
  | xargs -0 sha256sum | sha256sum | cut -c1-32)"
stamp="$venv/.mlci-source"
if [[ ! -f "$stamp" || "$(head -n 1 "$stamp")" != "$rev" ]]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  echo "$rev" > "$stamp"
fi
if ! grep -qxF "extra=$extra" "$stamp"; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$root${extra:+[$extra]}"
  echo "extra=$extra" >> "$stamp"
else
  echo "ml-cicd${extra:+[$extra]} already installed in $venv"
fi
if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
  echo "venv=$venv" >> "$GITHUB_OUTPUT"
fi
