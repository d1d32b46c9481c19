#!/usr/bin/env python3
"""PyTorch + PEFT side of the GPU benchmark (run by run.sh on the lent GPU machine, which has torch, transformers
and peft): the models of tools/bench/train-spec.json, its `gpu` block's LoRA settings and shapes, random weights,
HF's causal-LM loss (labels = input ids), AdamW (lr and weight decay of the spec), float32, CUDA. Prints and
writes (--json) tokens/s = batch x seq / mean step seconds over the timed steps, as tools/bench/train.ts does.
Attention is transformers' default implementation (recorded in the result). Measured, never asserted.
"""
import argparse
import json
import os
import time

import peft
import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = json.load(open(os.path.join(HERE, '..', 'train-spec.json')))


def build(key):
    cfg = dict(SPEC['models'][key]['config'])
    model_type = cfg.pop('model_type')
    config = transformers.AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    g = SPEC['gpu']
    lora = peft.LoraConfig(r=g['lora']['r'], lora_alpha=g['lora']['lora_alpha'], lora_dropout=g['lora']['lora_dropout'],
                           target_modules=g['lora_target_modules'][key], task_type='CAUSAL_LM')
    return peft.get_peft_model(model, lora).cuda()


def run(key):
    g = SPEC['gpu']
    model = build(key)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=SPEC['learning_rate'], weight_decay=SPEC['weight_decay'])
    ids = torch.randint(0, SPEC['models'][key]['config']['vocab_size'], (g['batch'], g['seq']), device='cuda', generator=None)
    times, losses = [], []
    for i in range(g['warmup'] + g['steps']):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())  # waits for the step, as peftkit's loss read does
        torch.cuda.synchronize()
        if i >= g['warmup']:
            times.append(time.perf_counter() - t0)
    mean = sum(times) / len(times)
    attn = getattr(model.base_model.model.config, '_attn_implementation', '?')
    return {
        'impl': 'pytorch', 'engine': f'torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, '
                                      f'{torch.cuda.get_device_name()}, float32, attention {attn}',
        'model': key, 'mode': 'lora', 'batch': g['batch'], 'seq': g['seq'], 'warmup': g['warmup'], 'steps': g['steps'],
        'stepSeconds': times, 'tokensPerSecond': g['batch'] * g['seq'] / mean, 'loss': [losses[0], losses[-1]],
        'peakCudaBytes': torch.cuda.max_memory_allocated(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', default='gpt2,llama')
    p.add_argument('--json')
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 arithmetic, as peftkit's WebGPU kernels
    torch.backends.cudnn.allow_tf32 = False
    results = []
    for key in a.models.split(','):
        r = run(key)
        results.append(r)
        print(f"{key} lora {r['batch']} x {r['seq']}: {sum(r['stepSeconds']) / len(r['stepSeconds']) * 1000:.1f} ms a step, "
              f"{r['tokensPerSecond']:.0f} tokens/s ({r['engine']})", flush=True)
        torch.cuda.empty_cache()
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
