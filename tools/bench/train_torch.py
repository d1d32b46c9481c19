#!/usr/bin/env python3
"""PyTorch reference for tools/bench/train.ts: the same models, shapes, LoRA settings and optimizer
(tools/bench/train-spec.json), measured the same way, on the CPU with 2 threads.

    /usr/bin/python3 tools/bench/train_torch.py [--models gpt2,llama,gpt2-main] [--modes forward,lora,full,full-sgd,generate]
        [--batch B] [--seq T] [--warmup W] [--steps N] [--new-tokens 64] [--threads 2]
        [--config-override '{"n_layer": 1}'] [--json results.json]

Run it with /usr/bin/python3 (where Debian's python3-torch is), not another Python on the PATH.

Needs Debian's python3-torch (1.13; transformers and peft are not installed here, so the models are
written out below following HF's modeling_gpt2.py and modeling_llama.py, eager attention) and, for a
fair BLAS, libopenblas0-openmp: the driver runs each (model, mode) in a child process with
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp when that folder exists, and every result
names the BLAS library the child actually loaded (from /proc/self/maps).

One step: forward, HF's causal-LM loss (labels = input ids, shifted, mean), backward, and an update:
torch.optim.AdamW (lora, full) or plain SGD (full-sgd). LoRA (Hu et al. 2021): y = base(x) +
(x Aᵀ) Bᵀ · alpha / r on the target modules, A kaiming-uniform, B zeros, base frozen, as HF PEFT.
Forward runs under torch.no_grad() in eval mode. Tokens/s = batch · seq / mean step seconds.
generate (GPT-2 only, as the spec's runs say): greedy decoding with a key/value cache written here
(each layer's keys and values [B, H, P + T, D] concatenated step by step, positions from P, the mask
letting query i see keys j <= P + i, as modeling_gpt2.py with past_key_values), eval mode,
torch.no_grad(), no EOS stop; the logits of every fed position are computed and the last one's argmax
taken, as peftkit's generate does. One timed step is one whole generation (prompt pass included);
tokens/s = batch · new tokens / median seconds. The first warm-up generation is checked against a
forward pass without the cache over the same tokens (same greedy tokens; the largest logit
difference goes into the result's notes).
--config-override merges JSON into every model's config (a smaller model for a quick check).
Peak memory: resource.getrusage(RUSAGE_SELF).ru_maxrss (the kernel's VmHWM), per child process.
Children run with OMP_WAIT_POLICY=PASSIVE unless it is set (see run_all).
Benchmarks are measured, never asserted in tests.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = json.load(open(os.path.join(HERE, 'train-spec.json')))
MODES = ['forward', 'lora', 'full', 'full-sgd', 'generate']
OPENBLAS_OPENMP = '/usr/lib/x86_64-linux-gnu/openblas-openmp'


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', default=','.join(SPEC['models']))
    p.add_argument('--modes', default=','.join(MODES))
    for k in ('batch', 'seq', 'warmup', 'steps', 'new-tokens'):
        p.add_argument(f'--{k}', type=int)
    p.add_argument('--config-override', help='JSON merged into every model config')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--timeout', type=int, default=600, help='seconds per (model, mode) child')
    p.add_argument('--json', help='write the results (a JSON array) here')
    p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    return p.parse_args()


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def blas_in_use():
    """The BLAS shared library this process has mapped, e.g. .../openblas-openmp/libopenblasp-r0.3.21.so."""
    libs = []
    with open('/proc/self/maps') as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ''
            name = os.path.basename(path)
            if ('blas' in name or 'mkl' in name) and path not in libs:
                libs.append(path)
    return ', '.join(libs) or 'no BLAS library mapped'


def run_one(key, mode, a):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = SPEC['models'][key]
    override = json.loads(a.config_override) if a.config_override else None
    cfg = {**m['config'], **(override or {})}
    r = m['runs'][mode]
    B, T = a.batch or r['batch'], a.seq or r['seq']
    W, N = a.warmup if a.warmup is not None else r['warmup'], a.steps or r['steps']

    class Conv1D(nn.Module):
        """HF's GPT-2 Conv1D: weight [in, out], y = x W + b."""

        def __init__(self, nx, nf):
            super().__init__()
            self.nf = nf
            self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
            self.bias = nn.Parameter(torch.zeros(nf))

        def forward(self, x):
            y = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
            return y.view(*x.shape[:-1], self.nf)

    class GPT2Attention(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.n_head, self.C = c['n_head'], c['n_embd']
            self.c_attn = Conv1D(self.C, 3 * self.C)
            self.c_proj = Conv1D(self.C, self.C)
            self.attn_dropout = nn.Dropout(c['attn_pdrop'])
            self.resid_dropout = nn.Dropout(c['resid_pdrop'])

        def forward(self, x, mask, past=None):
            """x [B, T, C]; mask [1, 1, T, P + T] (True: may attend); past: (key, value) [B, H, P, D] or None.
            Returns the output [B, T, C] and (key, value) [B, H, P + T, D]."""
            Bx, Tx, C = x.shape
            H, D = self.n_head, C // self.n_head
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(Bx, Tx, H, D).transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
            if past is not None:
                k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)  # [B, H, P + T, D]
            w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(D)
            w = torch.where(mask, w, torch.tensor(torch.finfo(w.dtype).min))
            w = self.attn_dropout(F.softmax(w, dim=-1))
            y = torch.matmul(w, v).transpose(1, 2).reshape(Bx, Tx, C)
            return self.resid_dropout(self.c_proj(y)), (k, v)

    class GPT2Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            C = c['n_embd']
            self.ln_1 = nn.LayerNorm(C, eps=c['layer_norm_epsilon'])
            self.attn = GPT2Attention(c)
            self.ln_2 = nn.LayerNorm(C, eps=c['layer_norm_epsilon'])
            self.c_fc = Conv1D(C, 4 * C)
            self.c_proj = Conv1D(4 * C, C)
            self.drop = nn.Dropout(c['resid_pdrop'])

        def forward(self, x, mask, past=None):
            a, present = self.attn(self.ln_1(x), mask, past)
            x = x + a
            h = F.gelu(self.c_fc(self.ln_2(x)), approximate='tanh')  # gelu_new
            return x + self.drop(self.c_proj(h)), present

    class GPT2LMHeadModel(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.wte = nn.Embedding(c['vocab_size'], c['n_embd'])
            self.wpe = nn.Embedding(c['n_positions'], c['n_embd'])
            nn.init.normal_(self.wte.weight, std=0.02)
            nn.init.normal_(self.wpe.weight, std=0.02)
            self.drop = nn.Dropout(c['embd_pdrop'])
            self.h = nn.ModuleList([GPT2Block(c) for _ in range(c['n_layer'])])
            self.ln_f = nn.LayerNorm(c['n_embd'], eps=c['layer_norm_epsilon'])

        def forward(self, ids, past=None):
            """Logits [B, T, vocab]; with `past` (a list of per-layer (key, value), empty to start a cache)
            also the new cache, the ids being positions P.. after the P cached ones."""
            Tx = ids.shape[1]
            P = past[0][0].shape[2] if past else 0
            mask = torch.tril(torch.ones(Tx, P + Tx, dtype=torch.bool), diagonal=P).view(1, 1, Tx, P + Tx)
            x = self.drop(self.wte(ids) + self.wpe(torch.arange(P, P + Tx).unsqueeze(0)))
            presents = []
            for i, blk in enumerate(self.h):
                x, kv = blk(x, mask, past[i] if past else None)
                presents.append(kv)
            logits = F.linear(self.ln_f(x), self.wte.weight)  # tied lm_head [B, T, vocab]
            return logits if past is None else (logits, presents)

    class RMSNorm(nn.Module):
        def __init__(self, n, eps):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(n))
            self.eps = eps

        def forward(self, x):
            var = x.pow(2).mean(-1, keepdim=True)
            return self.weight * (x * torch.rsqrt(var + self.eps))

    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    class LlamaAttention(nn.Module):
        def __init__(self, c):
            super().__init__()
            C = c['hidden_size']
            self.H, self.KVH = c['num_attention_heads'], c['num_key_value_heads']
            self.D = C // self.H
            self.q_proj = nn.Linear(C, self.H * self.D, bias=False)
            self.k_proj = nn.Linear(C, self.KVH * self.D, bias=False)
            self.v_proj = nn.Linear(C, self.KVH * self.D, bias=False)
            self.o_proj = nn.Linear(self.H * self.D, C, bias=False)

        def forward(self, x, cos, sin, mask):
            Bx, Tx, _ = x.shape
            q = self.q_proj(x).view(Bx, Tx, self.H, self.D).transpose(1, 2)
            k = self.k_proj(x).view(Bx, Tx, self.KVH, self.D).transpose(1, 2)
            v = self.v_proj(x).view(Bx, Tx, self.KVH, self.D).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            rep = self.H // self.KVH  # repeat_kv
            k = k[:, :, None].expand(Bx, self.KVH, rep, Tx, self.D).reshape(Bx, self.H, Tx, self.D)
            v = v[:, :, None].expand(Bx, self.KVH, rep, Tx, self.D).reshape(Bx, self.H, Tx, self.D)
            w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.D) + mask
            w = F.softmax(w, dim=-1, dtype=torch.float32)
            y = torch.matmul(w, v).transpose(1, 2).reshape(Bx, Tx, -1)
            return self.o_proj(y)

    class LlamaDecoderLayer(nn.Module):
        def __init__(self, c):
            super().__init__()
            C, I = c['hidden_size'], c['intermediate_size']
            self.self_attn = LlamaAttention(c)
            self.gate_proj = nn.Linear(C, I, bias=False)
            self.up_proj = nn.Linear(C, I, bias=False)
            self.down_proj = nn.Linear(I, C, bias=False)
            self.input_layernorm = RMSNorm(C, c['rms_norm_eps'])
            self.post_attention_layernorm = RMSNorm(C, c['rms_norm_eps'])

        def forward(self, x, cos, sin, mask):
            x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
            h = self.post_attention_layernorm(x)
            return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

    class LlamaForCausalLM(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.embed_tokens = nn.Embedding(c['vocab_size'], c['hidden_size'])
            nn.init.normal_(self.embed_tokens.weight, std=0.02)
            self.layers = nn.ModuleList([LlamaDecoderLayer(c) for _ in range(c['num_hidden_layers'])])
            self.norm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])
            D = c['hidden_size'] // c['num_attention_heads']
            self.inv_freq = 1.0 / (c['rope_theta'] ** (torch.arange(0, D, 2).float() / D))

        def forward(self, ids):
            Tx = ids.shape[1]
            freqs = torch.outer(torch.arange(Tx).float(), self.inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos()[None, None], emb.sin()[None, None]  # [1, 1, T, D]
            mask = torch.full((Tx, Tx), torch.finfo(torch.float32).min).triu(1)[None, None]
            x = self.embed_tokens(ids)
            for layer in self.layers:
                x = layer(x, cos, sin, mask)
            return F.linear(self.norm(x), self.embed_tokens.weight)  # tied lm_head

    class LoraLinear(nn.Module):
        """HF PEFT's lora.Linear around nn.Linear or (fan_in_fan_out) Conv1D: base(x) + (x Aᵀ) Bᵀ · scaling."""

        def __init__(self, base, r, alpha, dropout):
            super().__init__()
            self.base = base
            fin, fout = (base.weight.shape[0], base.weight.shape[1]) if isinstance(base, Conv1D) else (base.in_features, base.out_features)
            self.lora_A = nn.Parameter(torch.empty(r, fin))
            self.lora_B = nn.Parameter(torch.zeros(fout, r))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.scaling = alpha / r
            self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

        def forward(self, x):
            return self.base(x) + (self.dropout(x) @ self.lora_A.t() @ self.lora_B.t()) * self.scaling

    t0 = time.perf_counter()
    model = GPT2LMHeadModel(cfg) if cfg['model_type'] == 'gpt2' else LlamaForCausalLM(cfg)
    parameters = sum(p.numel() for p in model.parameters())
    notes = [f'config override {json.dumps(override)}'] if override else []
    if mode == 'generate' and not isinstance(model, GPT2LMHeadModel):
        raise SystemExit('generate is written for GPT-2 only (its key/value cache)')
    if mode == 'lora':
        for p in model.parameters():
            p.requires_grad_(False)
        targets = m['lora_target_modules']
        lo = SPEC['lora']
        for name, mod in list(model.named_modules()):
            for child_name, child in list(mod.named_children()):
                if child_name in targets:
                    setattr(mod, child_name, LoraLinear(child, lo['r'], lo['lora_alpha'], lo['lora_dropout']))
    params = [p for p in model.parameters() if p.requires_grad] if mode not in ('forward', 'generate') else []
    trainable = sum(p.numel() for p in params)
    build_seconds = time.perf_counter() - t0
    rss_after_build = peak_rss_bytes()

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, cfg['vocab_size'], (B, T), generator=g)
    losses = []
    n_new = a.new_tokens or r.get('new_tokens', 0)
    last_gen = []  # generate: the latest (tokens, last-step logits), checked after the timed runs
    if mode == 'generate':
        model.eval()

        def greedy():
            """n_new greedy tokens after `ids` [B, n_new], and the last step's logits [B, vocab]."""
            past, cur, out = [], ids, []
            for _ in range(n_new):
                logits, past = model(cur, past)
                last = logits[:, -1]
                cur = last.argmax(-1, keepdim=True)  # [B, 1]
                out.append(cur)
            return torch.cat(out, dim=1), last

        def step():
            with torch.no_grad():
                last_gen[:] = [greedy()]
    elif mode == 'forward':
        model.eval()

        def step():
            with torch.no_grad():
                model(ids)
    else:
        model.train()
        if mode == 'full-sgd':
            opt = torch.optim.SGD(params, lr=SPEC['learning_rate'])
        else:
            opt = torch.optim.AdamW(params, lr=SPEC['learning_rate'], weight_decay=SPEC['weight_decay'])

        def step():
            logits = model(ids)
            V = logits.shape[-1]
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())

    for _ in range(W):
        step()
    secs, cpu = [], []
    load0 = os.getloadavg()[0]
    for _ in range(N):
        s0, c0 = time.perf_counter(), time.process_time()
        step()
        secs.append(time.perf_counter() - s0)
        cpu.append(time.process_time() - c0)
    if last_gen:  # untimed: the cache gives what a forward without it gives over the same tokens
        gen, last = last_gen[0]
        with torch.no_grad():
            full = model(torch.cat((ids, gen[:, :-1]), dim=1))  # [B, T + n - 1, vocab]
        same = bool(torch.equal(full[:, T - 1:].argmax(-1), gen))
        diff = float((full[:, -1] - last).abs().max())
        notes.append(f'cache check: greedy tokens of a forward without the cache {"equal" if same else "DIFFER FROM"} the cached ones; last-step logits differ by {diff:.2e} at most')
    mean = sum(secs) / len(secs)
    median = sorted(secs)[len(secs) // 2] if len(secs) % 2 else sum(sorted(secs)[len(secs) // 2 - 1:len(secs) // 2 + 1]) / 2
    return {
        'impl': 'pytorch',
        'engine': f'PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s), OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY", "(default)")}, BLAS {blas_in_use()}',
        'threads': torch.get_num_threads(),
        'model': key, 'mode': mode, 'batch': B, 'seq': T, **({'newTokens': n_new} if mode == 'generate' else {}), 'warmup': W, 'steps': N,
        'stepSeconds': secs, 'cpuSeconds': cpu, 'loadAverage': [load0, os.getloadavg()[0]],
        'tokensPerSecond': B * n_new / median if mode == 'generate' else B * T / mean,
        'parameters': parameters, 'trainable': trainable, 'buildSeconds': build_seconds,
        'peakRssBytes': peak_rss_bytes(), 'rssAfterBuildBytes': rss_after_build,
        **({'loss': [losses[0], losses[-1]]} if losses else {}),
        'notes': notes,
    }


def run_all(models, modes, a):
    env = dict(os.environ)
    if os.path.isdir(OPENBLAS_OPENMP) and OPENBLAS_OPENMP not in env.get('LD_LIBRARY_PATH', ''):
        env['LD_LIBRARY_PATH'] = OPENBLAS_OPENMP + (':' + env['LD_LIBRARY_PATH'] if env.get('LD_LIBRARY_PATH') else '')
    # OpenMP threads that spin while waiting collapse when other processes hold the cores: on the
    # shared 2-core machine a 2-thread forward pass took 10.2 s with the default policy, 1.4 s passive.
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    passed = [f'--threads={a.threads}'] + [f'--{k.replace("_", "-")}={getattr(a, k)}' for k in ('batch', 'seq', 'warmup', 'steps', 'new_tokens', 'config_override') if getattr(a, k) is not None]
    results = []
    for key in models:
        for mode in modes:
            r = SPEC['models'][key]['runs'].get(mode)
            if r is None:
                sys.stderr.write(f'pytorch {key} {mode}: skipped, train-spec.json has no {mode} run for {key}\n')
                continue
            sys.stderr.write(f'pytorch {key} {mode} (batch {a.batch or r["batch"]} x seq {a.seq or r["seq"]}) ... ')
            sys.stderr.flush()
            t0 = time.perf_counter()
            try:
                p = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', f'--models={key}', f'--modes={mode}', *passed],
                                   env=env, capture_output=True, text=True, timeout=a.timeout)
                line = next((l for l in p.stdout.splitlines() if l.startswith('RESULT ')), None)
                why = f'exit {p.returncode}: ' + ' | '.join(p.stderr.strip().splitlines()[-4:])
            except subprocess.TimeoutExpired:
                line, why = None, f'timed out after {a.timeout} s'
            secs = time.perf_counter() - t0
            if line:
                results.append(json.loads(line[7:]))
                sys.stderr.write(f'{secs:.0f} s\n')
            else:
                sys.stderr.write(f'FAILED after {secs:.0f} s: {why}\n')
                results.append({'impl': 'pytorch', 'engine': '', 'model': key, 'mode': mode, 'batch': a.batch or r['batch'], 'seq': a.seq or r['seq'],
                                'warmup': r['warmup'], 'steps': r['steps'], 'stepSeconds': [], 'cpuSeconds': [], 'loadAverage': [None, None], 'tokensPerSecond': float('nan'), 'parameters': None,
                                'trainable': None, 'buildSeconds': None, 'peakRssBytes': None, 'rssAfterBuildBytes': None, 'notes': [], 'error': why})
    return results


def main():
    a = parse_args()
    try:
        import torch  # noqa: F401  (the children need it; say so here rather than in every child's traceback)
    except ImportError:
        sys.exit(f'no torch in {sys.executable}: run this script with /usr/bin/python3 (Debian python3-torch)')
    models, modes = a.models.split(','), a.modes.split(',')
    for k in models:
        if k not in SPEC['models']:
            sys.exit(f'unknown model "{k}"; tools/bench/train-spec.json has: {", ".join(SPEC["models"])}')
    for x in modes:
        if x not in MODES:
            sys.exit(f'unknown mode "{x}"; choose from {", ".join(MODES)}')
    if a.child:
        print('RESULT ' + json.dumps(run_one(models[0], modes[0], a)), flush=True)
        return
    results = run_all(models, modes, a)
    if a.json:
        tmp = a.json + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(results, f, indent=2)
        os.replace(tmp, a.json)
    engine = next((r['engine'] for r in results if r['engine']), 'PyTorch')
    print(f'{engine}; tokens/s = batch x seq / mean step time (generate: batch x new tokens / median generation time)\n')
    print('| model | mode | batch x seq | trainable params | step s | tokens/s | peak RSS MiB |')
    print('|---|---|---|---:|---:|---:|---:|')
    for r in results:
        if r.get('error'):
            print(f'| {r["model"]} | {r["mode"]} | {r["batch"]} x {r["seq"]} | | | failed: {r["error"][:120]} | |')
        else:
            mean = sum(r['stepSeconds']) / len(r['stepSeconds'])
            shape = f'{r["batch"]} x {r["seq"]}' + (f' + {r["newTokens"]} new' if r.get('newTokens') else '')
            print(f'| {r["model"]} | {r["mode"]} | {shape} | {r["trainable"]:,} | {mean:.2f} | {r["tokensPerSecond"]:.0f} | {r["peakRssBytes"] / 2**20:.0f} |')


if __name__ == '__main__':
    main()
