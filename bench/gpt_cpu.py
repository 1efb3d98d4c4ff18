"""Benchmark: train the chapter-17 GPT on TinyShakespeare for a time or step budget; KV-cache speed-up.

Prints; asserts nothing. Usage::

    python bench/gpt_cpu.py --seconds 60                       # the CPU preset, about 60 s of training
    python bench/gpt_cpu.py --steps 2000 --preset reference-cpu  # nanoGPT's README CPU recipe
    python bench/gpt_cpu.py --steps 300 --n-embd 256 --batch-size 8 --threads 2

Reports, for the training run: steps, tokens, seconds of training (validation excluded), tokens
per second, achieved GFLOP/s and the validation loss on the *whole* validation split
(:func:`dlscratch.training.lm.evaluate_sequence_nll`, non-overlapping windows). FLOPs per
training token are estimated as

    6 * N + 12 * n_layer * n_embd * block_size

with N the parameters without the position table (the matmuls, forward and backward: 2 + 4
FLOPs per weight and token) plus the attention scores and the weighted sum (PaLM, appendix B;
nanoGPT's ``estimate_mfu``). Then the KV cache: the time to generate ``--gen-tokens`` tokens
(batch 1, from a one-token prompt) with and without the cache, on a model of the same shape
whose ``block_size`` is raised to hold the prompt and all the new tokens (speed does not depend
on the weights; it is untrained), timed by :func:`dlscratch.models.generation.time_generation`
(one untimed run of each way, then the best of three alternating runs), once through
:class:`dlscratch.models.fused_decoder.FusedDecoder` (what ``GPT.generate`` runs) and once through the
``nn.Module`` forward pass.

``--seconds`` first times 21 steps of a throwaway copy, after 6 untimed warm-up steps, to
convert the budget into a step count (the cosine schedule needs to know where it ends).
``--compile`` wraps the model in ``torch.compile`` (its compile time is printed separately),
``--bf16`` runs the forward pass under ``torch.autocast(dtype=torch.bfloat16)`` (the GPU
preset's default).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from dataclasses import replace

import torch
from torch import nn

from dlscratch.data import load_shakespeare
from dlscratch.models.generation import time_generation
from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.models.fused_decoder import FusedDecoder
from dlscratch.training.lm import LMTrainConfig, evaluate_sequence_nll, split_text, train_sequence_lm

PRESETS = {"cpu": "cpu", "reference-cpu": "reference_cpu", "gpu": "gpu"}


def flops_per_token(model: GPT) -> int:
    c = model.config
    return 6 * model.num_parameters(non_embedding=True) + 12 * c.n_layer * c.n_embd * c.block_size


def wrap(model: GPT, args: argparse.Namespace) -> nn.Module:
    return torch.compile(model) if args.compile else model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=float, default=None, help="training wall-clock budget")
    budget.add_argument("--steps", type=int, default=None, help="training steps (default: the preset's)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    for name in ("block_size", "n_layer", "n_head", "n_embd", "batch_size", "warmup_steps"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None)
    for name in ("dropout", "lr", "min_lr_ratio"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=None)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--gen-tokens", type=int, default=512, help="tokens generated for the KV-cache timing (0: skip)")
    parser.add_argument("--no-train", action="store_true", help="only the KV-cache timing")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast (default: the preset's)")
    parser.add_argument("--kernels", choices=("written", "fused"), default="fused",
                        help="our attention and LayerNorm, or PyTorch's fused kernels (the chapter trains with fused)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("DLSCRATCH_BOOK_BUILD", "1")  # no progress bar: it would cost time
    torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    split = split_text(load_shakespeare())
    preset = PRESETS[args.preset]
    mcfg = getattr(GPTConfig, preset)(vocab_size=split.tokenizer.vocab_size)
    mcfg = replace(mcfg, **{k: getattr(args, k) for k in ("block_size", "n_layer", "n_head", "n_embd", "dropout") if getattr(args, k) is not None})
    mcfg = replace(mcfg, kernels=args.kernels)
    tcfg = getattr(LMTrainConfig, preset)()
    tcfg = replace(tcfg, **{k: getattr(args, k) for k in ("batch_size", "warmup_steps", "lr", "min_lr_ratio") if getattr(args, k) is not None})
    if args.steps is not None:
        tcfg = replace(tcfg, steps=args.steps)
    if args.bf16 is not None:
        tcfg = replace(tcfg, bf16=args.bf16)
    torch.manual_seed(args.seed)
    model = GPT(mcfg).to(dev)
    fpt = flops_per_token(model)
    print(f"torch {torch.__version__}, {args.threads} threads, device {dev.type}, load average {os.getloadavg()[0]:.2f}")
    print(f"model {mcfg}")
    print(f"{model.num_parameters():,} parameters without the position table; "
          f"FLOPs per training token 6N + 12*L*C*T = {fpt / 1e6:.2f} M")

    if not args.no_train:
        if args.seconds is not None:
            probe = wrap(copy.deepcopy(model), args)
            short = replace(tcfg, steps=6, warmup_steps=1)
            train_sequence_lm(probe, split.train.to(dev), short)  # warm-up: first steps are slow
            t_probe = train_sequence_lm(probe, split.train.to(dev), replace(short, steps=21))
            step_s = t_probe.train_seconds / 21
            tcfg = replace(tcfg, steps=max(tcfg.warmup_steps + 1, int(args.seconds / step_s)))
            print(f"probe: {1e3 * step_s:.1f} ms per step -> {tcfg.steps} steps for {args.seconds:g} s")
        print(f"training {tcfg}")
        runner = wrap(model, args)
        t0 = time.perf_counter()
        if args.compile:  # compile on a throwaway batch so its time is not counted as training
            runner(split.train[: mcfg.block_size][None].to(dev), split.train[1 : mcfg.block_size + 1][None].to(dev))[1].backward()
            model.zero_grad(set_to_none=True)
            print(f"compile: {time.perf_counter() - t0:.1f} s")
        hist = train_sequence_lm(runner, split.train.to(dev), tcfg)
        t1 = time.perf_counter()
        val = evaluate_sequence_nll(model, split.val.to(dev), mcfg.block_size)
        t_eval = time.perf_counter() - t1
        tok_s = hist.tokens / hist.train_seconds
        print(f"steps {tcfg.steps}, tokens {hist.tokens:,}, training {hist.train_seconds:.1f} s, "
              f"{tok_s:,.0f} tokens/s, {tok_s * fpt / 1e9:.1f} GFLOP/s")
        print(f"validation loss (whole split, {len(split.val) - 1:,} predictions): {val:.4f} nats ({t_eval:.1f} s); "
              f"last-100-step training loss {sum(hist.train_loss[-100:]) / len(hist.train_loss[-100:]):.4f}")

    if args.gen_tokens > 0:
        gcfg = replace(mcfg, block_size=max(mcfg.block_size, args.gen_tokens + 1), dropout=0.0)
        gen_model = GPT(gcfg).to(dev).eval()
        for name, runner in (("FusedDecoder (GPT.generate)", FusedDecoder(gen_model)), ("nn.Module forward", gen_model)):
            timing = time_generation(runner, args.gen_tokens)
            print(f"generation of {args.gen_tokens} tokens (block_size {gcfg.block_size}), {name}: "
                  f"{args.gen_tokens / timing.cached_seconds:,.0f} tokens/s with the KV cache, "
                  f"{args.gen_tokens / timing.full_seconds:,.0f} tokens/s without; speed-up {timing.speedup:.1f}x")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
