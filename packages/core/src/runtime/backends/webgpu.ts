/**
 * The WebGPU backend: `@tensorflow/tfjs-backend-webgpu` on Dawn, Chrome's WebGPU implementation, through
 * its Node binding (npm `webgpu`, prebuilt `dawn.node` inside the package). Both packages are optional
 * dependencies, imported only here and only when this backend is asked for.
 *
 * Adapters, in the order tried:
 * 1. Dawn's native backend for the platform (Vulkan on Linux), high-performance preference: a real GPU.
 * 2. Only when software is allowed (an explicit `webgpu` choice, never `auto`): Dawn's OpenGL ES backend on
 *    Mesa's llvmpipe, headless (`EGL_PLATFORM=surfaceless`) at WebGPU's compatibility feature level. It runs
 *    the same kernels on the CPU, slowly, so tests and CI check the WebGPU path on machines without a GPU
 *    (see ../shared/reference/stack-notes.md, "WebGPU").
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';

/** What the adapter says about itself (WebGPU's `GPUAdapterInfo`), for the run log and environment.json. */
export interface GpuAdapterInfo {
  /** PCI vendor name or id as the driver reports it, e.g. `nvidia`; empty on llvmpipe. */
  vendor: string;
  /** GPU family, e.g. `hopper`; may be empty. */
  architecture: string;
  /** Device name or id, e.g. `llvmpipe-llvm-15-0-6-256-bits-`. */
  device: string;
  /** Dawn puts the driver here (Vulkan: driver name and version; OpenGL ES: the GL version string). */
  description: string;
  /** Dawn's backend that runs it: `vulkan`, `opengles`, ... */
  dawnBackend: string;
  /** True for a CPU rasterizer (llvmpipe, lavapipe, SwiftShader, WARP): never chosen by `auto`. */
  software: boolean;
}

/** Minimal shapes of the WebGPU objects used here (the `webgpu` package's own types are optional too). */
interface Adapter {
  info: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter?: boolean };
  limits: Record<string, number>;
  features: Set<string>;
  requestDevice(d: unknown): Promise<{ destroy(): void; lost: Promise<{ message: string }> }>;
}
interface Gpu {
  requestAdapter(o?: Record<string, unknown>): Promise<Adapter | null>;
}

/** Device and adapter names of CPU implementations of WebGPU's backends. */
const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|microsoft basic render|\bwarp\b/i;

/** The WGSL limits tfjs's own factory raises to the adapter's (base.ts of tfjs-backend-webgpu 4.22). */
const LIMITS = ['maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupSizeX', 'maxComputeInvocationsPerWorkgroup'];

const BACKEND_PKG = '@tensorflow/tfjs-backend-webgpu';

/** Imports an optional dependency; a variable keeps bundlers and tsc from resolving it at build time. */
async function importOptional(pkg: string): Promise<any> {
  return import(/* @vite-ignore */ pkg).catch((e: Error) => {
    throw new Error(`${pkg} is not installed or does not load here (npm install ${BACKEND_PKG}@${tf.version.tfjs} webgpu): ${e.message.split('\n')[0]}`);
  });
}

/**
 * Loads Dawn and finds an adapter: the platform's native GPU backend first, then (when allowed) llvmpipe
 * through Dawn's OpenGL ES backend.
 * @throws Error saying what was found when there is no acceptable adapter.
 */
async function findAdapter(allowSoftware: boolean): Promise<{ gpu: Gpu; adapter: Adapter; dawnBackend: string }> {
  const dawn = await importOptional('webgpu');
  // tfjs's kernels use WebGPU's global enums (GPUBufferUsage, GPUMapMode, ...).
  for (const [k, v] of Object.entries(dawn.globals as Record<string, unknown>)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const tried: string[] = [];
  const native = dawn.create([]) as Gpu;
  const a = await native.requestAdapter({ powerPreference: 'high-performance' });
  if (a && !isSoftware(a)) return { gpu: native, adapter: a, dawnBackend: process.platform === 'darwin' ? 'metal' : process.platform === 'win32' ? 'd3d12' : 'vulkan' };
  tried.push(a ? `only a software adapter (${a.info.device || a.info.description})` : 'no GPU adapter (Dawn found no Vulkan/Metal/D3D12 driver)');
  if (allowSoftware) {
    // Mesa's EGL reads this when the display opens: headless, no X or Wayland server needed.
    process.env.EGL_PLATFORM ??= 'surfaceless';
    const gles = dawn.create(['backend=opengles']) as Gpu;
    const s = await gles.requestAdapter({ featureLevel: 'compatibility' });
    if (s) return { gpu: gles, adapter: s, dawnBackend: 'opengles' };
    tried.push('no OpenGL ES adapter either (Debian: apt-get install libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri)');
  }
  throw new Error(tried.join('; '));
}

/**
 * Why the WebGPU backend cannot start here (Dawn does not load, or it finds no adapter, llvmpipe included),
 * or undefined when it can. For tests: they skip with this reason, and fail instead when the environment
 * sets `PEFTKIT_REQUIRE_WEBGPU=1` (CI, which installs Mesa).
 * @throws Error with the reason when `PEFTKIT_REQUIRE_WEBGPU=1` and WebGPU is unavailable.
 */
export async function webgpuUnavailable(): Promise<string | undefined> {
  try {
    await import('@tensorflow/tfjs-backend-webgpu');
    await findAdapter(true);
    return undefined;
  } catch (e) {
    const reason = (e as Error).message;
    if (process.env.PEFTKIT_REQUIRE_WEBGPU === '1') throw new Error(`PEFTKIT_REQUIRE_WEBGPU=1 but WebGPU cannot start: ${reason}`);
    return reason;
  }
}

let adapterInfo: GpuAdapterInfo | undefined;
let started: { detail: string; adapter: GpuAdapterInfo } | undefined;

/** The adapter of the WebGPU backend started last, if any. */
export function webgpuAdapter(): GpuAdapterInfo | undefined {
  return adapterInfo;
}

/**
 * Starts tfjs's WebGPU backend on Dawn and makes it the current backend.
 * @param allowSoftware also accept llvmpipe through Dawn's OpenGL ES backend when no GPU adapter is found.
 * @returns a one-line description (package versions and adapter).
 * @throws Error when a package is not installed, no (acceptable) adapter is found, or the device or backend
 *   fails to start; the message says which.
 */
export async function startWebGpu(allowSoftware: boolean): Promise<{ detail: string; adapter: GpuAdapterInfo }> {
  // One device per process: later calls (tests switch backends) make the same backend current again.
  if (started && tf.findBackend('webgpu')) {
    if (!started.adapter.software || allowSoftware) {
      await tf.setBackend('webgpu');
      return started;
    }
    throw new Error(`only a software adapter (${started.adapter.device})`);
  }
  // A literal specifier, so that a bundle (tools/bench/gpu) carries the backend; Dawn's native `webgpu` stays external.
  const backendMod = await import('@tensorflow/tfjs-backend-webgpu').catch((e: Error) => {
    throw new Error(`${BACKEND_PKG} is not installed or does not load here (npm install ${BACKEND_PKG}@${tf.version.tfjs} webgpu): ${e.message.split('\n')[0]}`);
  });
  const found = await findAdapter(allowSoftware);
  const { gpu, adapter, dawnBackend } = found;
  const requiredLimits: Record<string, number> = {};
  for (const k of LIMITS) if (adapter.limits[k] !== undefined) requiredLimits[k] = adapter.limits[k];
  const requiredFeatures = ['timestamp-query'].filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  // tfjs's WebGPUBackend constructor checks `navigator.gpu`; Node 20 has no navigator, Node 21+ has one without gpu.
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator) g.navigator.gpu ??= gpu;
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });

  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  const Base = backendMod.WebGPUBackend as new (device: unknown, info: unknown) => { readSync(id: object): unknown; tensorMap: { get(id: object): { values?: unknown } } };
  /** tfjs's readSync draws through OffscreenCanvas, which Node lacks: say what to do instead of "OffscreenCanvas is not defined". */
  class NodeWebGpuBackend extends Base {
    override readSync(dataId: object): unknown {
      if (this.tensorMap.get(dataId)?.values == null && typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas === 'undefined') {
        throw new Error('a synchronous read (dataSync/arraySync) of a tensor that lives on the GPU: WebGPU in Node can only read back asynchronously; use `await tensor.data()` (or download it first with `await tensor.data()`, after which dataSync works)');
      }
      return super.readSync(dataId);
    }
  }
  tf.registerBackend('webgpu', () => new NodeWebGpuBackend(device, adapter.info) as unknown as tf.KernelBackend, 0);
  if (!(await tf.setBackend('webgpu'))) throw new Error(`${BACKEND_PKG} did not start on ${adapter.info.device || adapter.info.description}`);
  await tf.ready();

  const info = adapter.info;
  adapterInfo = {
    vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, dawnBackend, software: isSoftware(adapter),
  };
  const name = [info.vendor, info.architecture, info.device].filter(Boolean).join(' ');
  const detail = `${BACKEND_PKG} ${tf.version.tfjs} on Dawn (webgpu ${dawnVersion()}, ${dawnBackend}): ${name}, ${info.description}${adapterInfo.software ? ' (software)' : ''}`;
  started = { detail, adapter: adapterInfo };
  return started;
}

function isSoftware(a: Adapter): boolean {
  const i = a.info;
  return !!i.isFallbackAdapter || SOFTWARE.test(`${i.device} ${i.description} ${i.architecture}`);
}

function dawnVersion(): string {
  try {
    return (createRequire(import.meta.url)('webgpu/package.json') as { version: string }).version;
  } catch {
    return '?';
  }
}
