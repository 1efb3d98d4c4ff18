"""Benchmark: GPT to LLaMA one change at a time, and after LLaMA, at equal wall-clock on TinyShakespeare.

Prints; asserts nothing. Usage::

    python bench/llama_cpu.py                      # every run, 60 s of training each
    python bench/llama_cpu.py --seconds 30 --only "ladder: untied head (= LLaMA)" "+ QK-norm"
    python bench/llama_cpu.py --part 1   # the first half of the runs (--part 2: the rest), for shorter sittings

In one process, each run trains for the same wall-clock budget (``--seconds``): chapter 17's GPT
preset (its own model and recipe), the ladder
GPT -> +RMSNorm -> +RoPE -> +SwiGLU -> +GQA -> no biases -> untied head
(:func:`dlscratch.models.llama.ladder` at the LLaMA preset's sizes and recipe; the last rung is
chapter 21's LLaMA preset), and the 2024-25 speedrun changes on top of the LLaMA preset:
QK-norm, a squared-ReLU MLP (4C wide), the Muon optimizer on the hidden matrices
(``LMTrainConfig(optimizer="muon")``), and the three together. Each run first times 21 steps of
a throwaway copy, after 6 untimed warm-up steps (:func:`dlscratch.training.lm.steps_for_seconds`),
to turn the budget into a step count (the cosine schedule needs its end).
Reported: parameters, steps, training seconds (validation excluded), tokens/s, GFLOP/s with

    6 * N + 12 * n_layer * n_embd * block_size   FLOPs per training token

(N: the parameters that do matrix products: without a position table, and without the token
table when the head is untied, since a lookup costs nothing), and the validation loss on the
*whole* validation split (:func:`dlscratch.training.lm.evaluate_sequence_nll`).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

import torch

from dlscratch.data import load_shakespeare
from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.models.llama import LLaMA, LlamaConfig, ladder
from dlscratch.training.lm import LMTrainConfig, evaluate_sequence_nll, split_text, steps_for_seconds, train_sequence_lm
from dlscratch.utils import seed_everything


def flops_per_token(model: torch.nn.Module) -> int:
    c = model.config
    n = sum(p.numel() for p in model.parameters())
    if getattr(model, "wpe", None) is not None:
        n -= model.wpe.weight.numel()
    if model.lm_head.weight is not model.wte.weight:
        n -= model.wte.weight.numel()
    return 6 * n + 12 * c.n_layer * c.n_embd * c.block_size


def runs() -> dict[str, tuple]:
    r"""name -> (model factory, training config)."""
    V = 65
    gpt_cfg, llama_cfg = replace(GPTConfig.cpu(V), kernels="fused"), replace(LlamaConfig.cpu(V), kernels="fused")
    out: dict[str, tuple] = {"GPT, chapter 17 preset": (lambda: GPT(gpt_cfg), LMTrainConfig.cpu())}
    for name, cfg in ladder(llama_cfg).items():
        out[f"ladder: {name}"] = (lambda cfg=cfg: LLaMA(cfg), LMTrainConfig.llama_cpu())
    out["+ QK-norm"] = (lambda: LLaMA(replace(llama_cfg, qk_norm=True)), LMTrainConfig.llama_cpu())
    out["+ ReLU² MLP (4C)"] = (lambda: LLaMA(replace(llama_cfg, mlp="relu2", ffn_hidden=4 * llama_cfg.n_embd)), LMTrainConfig.llama_cpu())
    muon = replace(LMTrainConfig.llama_cpu(), optimizer="muon")
    out["+ Muon (hidden matrices; AdamW on the rest)"] = (lambda: LLaMA(llama_cfg), muon)
    out["+ Muon + QK-norm + ReLU²"] = (lambda: LLaMA(replace(llama_cfg, qk_norm=True, mlp="relu2", ffn_hidden=4 * llama_cfg.n_embd)), muon)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training wall-clock budget of each run")
    parser.add_argument("--only", nargs="*", default=None, help="run only these names")
    parser.add_argument("--part", type=int, choices=(1, 2), default=None, help="only the first or the second half of the runs")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("DLSCRATCH_BOOK_BUILD", "1")  # no progress bar: it would cost time
    torch.set_num_threads(args.threads)
    split = split_text(load_shakespeare())
    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()[0]:.2f}, {args.seconds:g} s per run")
    rows = []
    names = list(runs())
    half = (len(names) + 1) // 2
    chosen = names if args.part is None else names[:half] if args.part == 1 else names[half:]
    for name, (make, tcfg) in runs().items():
        if (args.only and name not in args.only) or name not in chosen:
            continue
        seed_everything(args.seed)
        model = make()
        steps = steps_for_seconds(model, split.train, tcfg, args.seconds)
        tcfg = replace(tcfg, steps=steps)
        hist = train_sequence_lm(model, split.train, tcfg)
        val = evaluate_sequence_nll(model, split.val, model.config.block_size)
        tok_s = hist.tokens / hist.train_seconds
        n_params = sum(p.numel() for p in model.parameters())
        rows.append((name, n_params, steps, hist.train_seconds, tok_s, tok_s * flops_per_token(model) / 1e9, val))
        print(f"{name}: val {val:.4f} in {hist.train_seconds:.1f} s ({steps} steps)", flush=True)
    print()
    print("| run | parameters | steps | train s | tokens/s | GFLOP/s | val loss |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, n, steps, secs, tok_s, gflops, val in rows:
        print(f"| {name} | {n:,} | {steps} | {secs:.1f} | {tok_s:,.0f} | {gflops:.1f} | {val:.4f} |")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
