#!/usr/bin/env bash
# Builds tools/bench/gpu/dist/ (gitignored, about 35 MB): everything the lent GPU machine needs to run peftkit's
# WebGPU training benchmark in one call, since it has python3 + torch + transformers + peft but no Node.js:
#   node.xz       this machine's Node.js binary (needs only glibc and libstdc++ there)
#   bench.mjs     tools/bench/train.ts and all of peftkit and tfjs (WebGPU backend included) bundled by esbuild
#   kernels.mjs   tools/bench/webgpu-kernels.ts (the kernel micro-benchmark), bundled the same way
#   node_modules/webgpu/  Dawn's Node binding, external to the bundle (dawn.node xz-compressed)
#   debs/         the Vulkan loader and GL dispatch libraries Dawn needs (stack notes, "WebGPU"), from apt
# Then, from the repository root:  run(command="bash tools/bench/gpu/run.sh", carry=["tools/bench/gpu/dist"])
set -euo pipefail
cd "$(dirname "$0")/../../.."
D=tools/bench/gpu/dist
rm -rf "$D" && mkdir -p "$D/debs" "$D/node_modules/webgpu/dist/linux-x64"
# Two self-contained bundles (no code splitting: train.ts re-runs its own file, import.meta.url, as child processes).
npx esbuild bench=tools/bench/train.ts kernels=tools/bench/webgpu-kernels.ts --bundle --platform=node --format=esm --conditions=peftkit-source \
  --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu --log-level=warning \
  --banner:js="import { createRequire as __peftkitCreateRequire } from 'node:module'; const require = __peftkitCreateRequire(import.meta.url);" \
  --outdir="$D" --out-extension:.js=.mjs
xz -9 -T0 -c "$(command -v node)" > "$D/node.xz"
cp node_modules/webgpu/index.js node_modules/webgpu/package.json "$D/node_modules/webgpu/"
xz -9 -c node_modules/webgpu/dist/linux-x64/dawn.node > "$D/node_modules/webgpu/dist/linux-x64/dawn.node.xz"
(cd "$D/debs" && apt-get download -qq libvulkan1 libglvnd0 libgl1 libglx0 libegl1 libopengl0 libgles2 >/dev/null)
du -sh "$D" "$D"/* | sed 's/^/  /'
