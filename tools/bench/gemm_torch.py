"""PyTorch's side of tools/bench/gemm.ts: GFLOP/s of `a @ b` (float32, OpenBLAS here) at the same shapes.

    /usr/bin/python3 tools/bench/gemm_torch.py THREADS
"""
import json
import sys
import time

import torch

SHAPES = [(128, 768, 3072), (128, 768, 50257), (2048, 128, 512), (2032, 128, 4096), (1024, 1024, 1024)]  # as GEMM_SHAPES in gemm.ts

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.set_num_threads(threads)
for m, k, n in SHAPES:
    a, b = torch.randn(m, k), torch.randn(k, n)
    best = float('inf')
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({'impl': f'torch {torch.__version__} ({threads} threads)', 'm': m, 'k': k, 'n': n, 'ms': round(best * 1e3, 2), 'gflops': round(2 * m * k * n / best / 1e9, 1)}))
