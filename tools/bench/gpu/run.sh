#!/usr/bin/env bash
# Runs on the lent GPU machine (see build.sh): unpacks Node.js, Dawn and the Debian libraries, then measures
# peftkit on WebGPU (tools/bench/train.ts --backend webgpu --gpu --profile) and PyTorch + PEFT (torch_peft.py)
# with the same models and settings (train-spec.json, block `gpu`), and writes everything to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../.."
D=tools/bench/gpu/dist
OUT=${OUT:-/tmp/peftkit-gpu-out}
mkdir -p "$OUT"
W=$(mktemp -d)
xz -dc "$D/node.xz" > "$W/node" && chmod +x "$W/node"
cp -r "$D/node_modules" "$W/" && xz -d "$W/node_modules/webgpu/dist/linux-x64/dawn.node.xz"
cp "$D/bench.mjs" "$W/"
for f in "$D"/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$f" ] && export VK_DRIVER_FILES="$f" && break
done
{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  echo "node: $("$W/node" --version); VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
} | tee "$OUT/machine.txt"
timeout 420 "$W/node" "$W/bench.mjs" --backend webgpu --gpu --models gpt2,llama --modes lora --profile --timeout 200 \
  --json "$OUT/peftkit.json" 2>&1 | tee "$OUT/peftkit.txt"
timeout 150 python3 tools/bench/gpu/torch_peft.py --json "$OUT/torch.json" 2>&1 | tee "$OUT/torch.txt"
