"""Benchmark: adapting a Shakespeare LLaMA to names with full fine-tuning, head-only, LoRA and QLoRA, longer than the page can.

Prints a table; asserts nothing. Usage::

    python bench/lora_cpu.py                                  # the chapter's setup, 4x its steps
    python bench/lora_cpu.py --pre-steps 400 --steps 150      # the chapter's own budget
    python bench/lora_cpu.py --targets q_proj v_proj --ranks 1 2 4 8 16   # the LoRA paper's W_q, W_v only
    python bench/lora_cpu.py --width 256 --layers 2           # a bigger base: adapters are a smaller share

Chapter 23's recipe: a LLaMA (``--layers`` blocks, ``--width`` wide, 4 query and 2 key/value
heads, SwiGLU, context 32) pretrained on TinyShakespeare for ``--pre-steps`` steps, then, each
for ``--steps`` steps of 32 windows on the training names (one name per line, in the Shakespeare
vocabulary): full fine-tuning (lr 3e-3), head-only (3e-2), LoRA at each of ``--ranks`` with
alpha = ``--alpha`` on ``--targets`` (lr 1e-2), and the same LoRA on the base with those matrices
in NF4 (double quantised, blocks of 64). Reported per run: trainable parameters and their share of
the model, the held-out names loss (:func:`dlscratch.training.lm.evaluate_sequence_nll`), the
share of full fine-tuning's improvement it recovers, and the training seconds. Chapter 23.
"""

from __future__ import annotations

import argparse
import copy

import torch

from dlscratch.data import load_shakespeare
from dlscratch.data.names import names_split
from dlscratch.layers import add_lora, quantize_linears, swiglu_hidden
from dlscratch.models.llama import LLaMA, LlamaConfig
from dlscratch.training.lm import LMTrainConfig, evaluate_sequence_nll, split_text, train_sequence_lm
from dlscratch.utils import device, seed_everything

ALL = ["q_proj", "k_proj", "v_proj", "out_proj", "gate", "up", "down"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--pre-steps", type=int, default=1600)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--alpha", type=float, default=8.0)
    parser.add_argument("--targets", nargs="+", default=ALL)
    parser.add_argument("--no-qlora", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = device()
    data = split_text(load_shakespeare())
    tok = data.tokenizer
    names = names_split()

    def encode(words: list[str]) -> torch.Tensor:
        return torch.tensor(tok.encode("\n".join(words) + "\n"), device=dev)

    names_train, names_val = encode(names.train), encode(names.val)
    cfg = LlamaConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=args.layers, n_head=4, n_kv_head=2,
                      n_embd=args.width, ffn_hidden=swiglu_hidden(args.width, 32), kernels="fused")
    seed_everything(0)
    base = LLaMA(cfg).to(dev)
    pre = train_sequence_lm(base, data.train.to(dev), LMTrainConfig(batch_size=32, steps=args.pre_steps, lr=6e-3,
                                                                     warmup_steps=20, min_lr_ratio=0.05))
    n_total = sum(p.numel() for p in base.parameters())
    base_loss = evaluate_sequence_nll(base, names_val, cfg.block_size)
    print(f"device {dev}; base: {n_total:,} parameters, {args.pre_steps} pretraining steps in {pre.train_seconds:.1f} s, "
          f"names loss {base_loss:.4f}; LoRA on {args.targets}, alpha {args.alpha:g}, {args.steps} steps per run")

    def run(model: torch.nn.Module, lr: float) -> tuple[int, float, float]:
        ft = LMTrainConfig(batch_size=32, steps=args.steps, lr=lr, warmup_steps=10, min_lr_ratio=0.1, weight_decay=0.0)
        n = sum(p.numel() for p in model.parameters() if p.requires_grad)
        hist = train_sequence_lm(model, names_train, ft)
        return n, evaluate_sequence_nll(model, names_val, cfg.block_size), hist.train_seconds

    rows = {}
    seed_everything(0)
    rows["full fine-tuning"] = run(copy.deepcopy(base), 3e-3)
    head = copy.deepcopy(base)
    for p in head.parameters():
        p.requires_grad_(p is head.lm_head.weight)
    rows["head only"] = run(head, 3e-2)
    nf4 = copy.deepcopy(base)
    quantize_linears(nf4, args.targets)
    for r in args.ranks:
        for name, start in (("LoRA", base), ("QLoRA", nf4)):
            if name == "QLoRA" and args.no_qlora:
                continue
            seed_everything(0)
            m = copy.deepcopy(start)
            add_lora(m, args.targets, r, args.alpha)
            rows[f"{name} r={r}"] = run(m, 1e-2)
    full = rows["full fine-tuning"][1]
    print(f"{'method':>16} {'trainable':>10} {'fraction':>9} {'names loss':>11} {'recovered':>10} {'seconds':>8}")
    for name, (n, loss, secs) in rows.items():
        print(f"{name:>16} {n:>10,} {n / n_total:>9.2%} {loss:>11.4f} {(base_loss - loss) / (base_loss - full):>10.1%} {secs:>8.1f}")


if __name__ == "__main__":
    main()
