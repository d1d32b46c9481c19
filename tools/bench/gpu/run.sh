#!/usr/bin/env bash
# Runs on the lent GPU machine (see build.sh): unpacks Node.js, Dawn and the Debian libraries, then measures
# peftkit on WebGPU (tools/bench/train.ts --backend webgpu --gpu --profile) and PyTorch + PEFT (torch_peft.py)
# with the same models and settings (train-spec.json, block `gpu`), then peftkit's WebGPU kernels against what they
# replace (tools/bench/webgpu-kernels.ts), and writes everything to $OUT:
#   machine.txt, peftkit.{json,txt}, torch.{json,txt}, kernels.{json,txt}
# The kernel benchmark runs last: if the call's time limit cuts the run short, only it is lost (each step writes
# its files as it finishes, and what is under $OUT comes back).
#
# PEFTKIT_GPU_CHECK=1 bash tools/bench/gpu/run.sh checks the script and the bundle on a machine without a GPU:
# it leaves the system alone (no .deb unpacked into /, no ldconfig), skips PyTorch, and runs both bundles at tiny
# sizes on whatever adapter Dawn finds (llvmpipe with the EGL/GLES packages of stack-notes.md "WebGPU").
set -uo pipefail
cd "$(dirname "$0")/../../.."
D=tools/bench/gpu/dist
OUT=${OUT:-/tmp/peftkit-gpu-out}
CHECK=${PEFTKIT_GPU_CHECK:-}
mkdir -p "$OUT"
W=$(mktemp -d)
xz -dc "$D/node.xz" > "$W/node" && chmod +x "$W/node"
cp -r "$D/node_modules" "$W/" && xz -d "$W/node_modules/webgpu/dist/linux-x64/dawn.node.xz"
cp "$D/bench.mjs" "$D/kernels.mjs" "$W/"
if [ -z "$CHECK" ]; then
  for f in "$D"/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$f" ] && export VK_DRIVER_FILES="$f" && break
  done
  TRAIN=(--backend webgpu --gpu --models gpt2,llama --modes lora --profile --timeout 200)
  KERNELS=()
else
  TRAIN=(--backend webgpu --gpu --models gpt2 --modes lora --profile --timeout 200 --batch 1 --seq 8 --warmup 1 --steps 1
    --config-override '{"n_embd":64,"n_layer":2,"n_head":2,"vocab_size":1000}')
  KERNELS=(--small --iters 1)
fi
{
  echo "date: $(date -u +%FT%TZ)${CHECK:+ (PEFTKIT_GPU_CHECK: no GPU expected, tiny sizes)}"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  echo "node: $("$W/node" --version); VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
} | tee "$OUT/machine.txt"
timeout 420 "$W/node" "$W/bench.mjs" "${TRAIN[@]}" --json "$OUT/peftkit.json" 2>&1 | tee "$OUT/peftkit.txt"
if [ -z "$CHECK" ]; then
  timeout 150 python3 tools/bench/gpu/torch_peft.py --json "$OUT/torch.json" 2>&1 | tee "$OUT/torch.txt"
fi
# On the H200 a few seconds (the shapes of webgpu-kernels.ts: 4096³, the LM head, attention [8, 12, 512, 64]).
timeout 60 "$W/node" "$W/kernels.mjs" ${KERNELS[@]+"${KERNELS[@]}"} --json "$OUT/kernels.json" 2>&1 | tee "$OUT/kernels.txt"
rm -rf "$W"
