#!/usr/bin/env bash
# Install ml-cicd from this action's own checkout (so the action ref IS the code version) into a
# private venv, never touching the job's Python. The venv lives in the runner's tool cache, keyed
# by the source revision and the interpreter, so later jobs on the same (self-hosted) runner reuse
# it; a lock keeps concurrent jobs from building it twice. Env: MLCI_EXTRA (pip extra; "core" for
# none), or MLCI_STAGE + MLCI_EXTRAS ("stage=extra ..." as the root action passes them), and
# MLCI_PYTHON (interpreter to build the venv from, default python3). Writes venv=<path> to $GITHUB_OUTPUT.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
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
# _version.py is left out: the install itself writes it into the checkout (setuptools-scm).
rev="$(cd "$root" && find pyproject.toml src/mlcicd -type f ! -name '*.pyc' ! -name _version.py -print0 \
  | LC_ALL=C sort -z \
  | xargs -0 sha256sum | sha256sum | cut -c1-16)"
interpreter="$("$python" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')"
home="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}}/ml-cicd"
venv="$home/$rev-$interpreter"
mkdir -p "$home"
if command -v flock >/dev/null; then
  exec 9>"$venv.lock"
  flock 9
fi
stamp="$venv/.mlci-source"
if [[ ! -f "$stamp" ]]; then
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
