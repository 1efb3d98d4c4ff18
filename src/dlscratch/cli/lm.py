r"""The command line shared by the decoder language models: ``train``, ``sample`` (and ``export``).

One :class:`Family` per model (GPT, chapter 17; LLaMA, chapter 21) says which configuration and
model classes to build, which presets and which model flags it has; :func:`build_parser` and
:func:`run` do the rest, the same way for each:

``train`` splits the text 90/10 (characters as tokens), trains with AdamW, warm-up and cosine
decay, shows a progress bar, validates on the whole validation split every ``--eval-every``
steps and then writes ``OUT/ckpt.pt`` atomically (temporary file, then :func:`os.replace`), and
``OUT/best.pt`` when the validation loss is the lowest so far (what ``sample`` should read). A
checkpoint (:mod:`dlscratch.training.checkpoint`) also holds the model's class and
configuration, the vocabulary and, as metadata, the training configuration and a hash of the
data, so ``--resume`` refuses a checkpoint from another run with a :class:`ValueError` naming what
differs, ``sample`` needs nothing but the file, and a GPT checkpoint given to ``llama`` (or the
reverse) is refused with an error naming both classes. ``--resume --steps N`` with a larger ``N``
continues a finished run; the schedule then decays over the new total. A family with an
``export`` function gets an ``export`` subcommand (LLaMA: a Hugging Face folder).

Under ``torchrun`` (chapter 37) ``train`` is data-parallel: ``torchrun --nproc-per-node=N -m
dlscratch llama train ...`` starts :math:`N` processes (gloo on the CPU, NCCL with one GPU each);
``--batch-size`` is per process, every process draws the same global batch and trains on its
slice, the gradients are averaged during the backward pass
(:class:`~dlscratch.training.parallel.ddp.BucketedAllReduce`), and rank 0 logs and writes the
checkpoints. Without ``torchrun`` nothing changes.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..data import load_shakespeare
from ..tokenizers.char import CharTokenizer
from ..training.checkpoint import checkpoint_config, load_checkpoint, read_checkpoint, save_checkpoint
from ..training.lm import LMTrainConfig, make_optimizer, split_text, train_sequence_lm
from ..training.parallel.ddp import BucketedAllReduce, broadcast_parameters, init_distributed
from ..utils import device as default_device
from ..utils import progress_enabled, seed_everything

__all__ = ["Family", "build_parser", "run"]

TRAIN_FLAGS = ("batch_size", "steps", "lr", "warmup_steps", "min_lr_ratio", "weight_decay", "grad_clip", "seed")
FLOAT_FLAGS = ("dropout", "lr", "min_lr_ratio", "weight_decay", "grad_clip", "rope_base")


@dataclass(frozen=True)
class Family:
    r"""What the shared command line needs to know about one model family."""

    command: str  # the command's name: python -m dlscratch <command>
    title: str  # for --help and the log, e.g. "GPT (chapter 17)"
    model_class: type  # built as model_class(config)
    config_class: type  # a frozen dataclass with vocab_size and the preset classmethods
    presets: dict[str, str]  # --preset -> the config classmethod
    train_presets: dict[str, str]  # --preset -> LMTrainConfig classmethod
    model_flags: tuple[str, ...]  # config fields that get a --flag
    export: Callable[..., Path] | None = None  # export(model, folder, force=...) for an `export` subcommand


def _differences(ckpt: dict[str, Any], meta: dict[str, Any], itos: list[str]) -> list[str]:
    r"""What stops a resume from ``ckpt``: another vocabulary, data or training setting (``steps`` may change)."""
    out = []
    saved_itos = ckpt["tokenizer"]["itos"] if ckpt["tokenizer"] else []
    if saved_itos != itos:
        only_ckpt, only_now = sorted(set(saved_itos) - set(itos)), sorted(set(itos) - set(saved_itos))
        out.append(
            f"vocabulary: expected {len(itos)} characters, found {len(saved_itos)} "
            f"(only in checkpoint {only_ckpt[:10]}, only now {only_now[:10]})"
        )
    saved = ckpt["meta"]
    if saved.get("data_sha256") != meta["data_sha256"]:
        out.append(f"data: expected sha256 {meta['data_sha256'][:12]}..., found {str(saved.get('data_sha256'))[:12]}...")
    mine, theirs = meta["train"], saved.get("train", {})
    for key in sorted(mine.keys() | theirs.keys()):
        if key != "steps" and mine.get(key) != theirs.get(key):
            out.append(f"train.{key}: expected {mine.get(key)!r}, found {theirs.get(key)!r}")
    return out


def _log(msg: str) -> None:
    if progress_enabled():
        from tqdm.auto import tqdm

        tqdm.write(msg)
    else:
        print(msg, flush=True)


def _train(family: Family, args: argparse.Namespace) -> int:
    text = load_shakespeare() if args.data is None else Path(args.data).read_text(encoding="utf-8")
    split = split_text(text)
    model_cfg = getattr(family.config_class, family.presets[args.preset])(vocab_size=split.tokenizer.vocab_size)
    model_cfg = replace(model_cfg, **{k: getattr(args, k) for k in family.model_flags if getattr(args, k) is not None})
    model_cfg = replace(model_cfg, kernels=args.kernels)
    train_cfg = getattr(LMTrainConfig, family.train_presets[args.preset])()
    train_cfg = replace(train_cfg, **{k: getattr(args, k) for k in TRAIN_FLAGS + ("bf16",) if getattr(args, k) is not None})
    log = _log if int(os.environ.get("RANK", "0")) == 0 else (lambda msg: None)  # under torchrun, rank 0 speaks
    meta = {"train": asdict(train_cfg), "data_sha256": hashlib.sha256(text.encode()).hexdigest(), "best_val": math.inf}
    env = init_distributed(torch.device(args.device) if args.device else default_device())  # rank 0 of 1 without torchrun
    dev = env.device
    out = Path(args.out)
    ckpt_path = out / "ckpt.pt"

    seed_everything(train_cfg.seed)
    model = family.model_class(model_cfg).to(dev)
    if env.world_size > 1:  # data parallel: equal replicas, gradients averaged during backward
        broadcast_parameters(model)
        BucketedAllReduce(model)
    opt = make_optimizer(model, train_cfg)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    start = 0
    if args.resume:
        saved = read_checkpoint(ckpt_path)
        diffs = _differences(saved, meta, split.tokenizer.itos)
        if diffs:
            raise ValueError(f"cannot resume from {ckpt_path}: it comes from another run; " + "; ".join(diffs))
        meta["best_val"] = saved["meta"]["best_val"]
        start = load_checkpoint(ckpt_path, model=model, optimizer=opt, generator=gen, map_location=dev)  # checks class and config
        log(f"resumed {ckpt_path} at step {start}")
    train, val = split.train.to(dev), split.val.to(dev)
    log(
        f"{family.model_class.__name__} {model.num_parameters():,} parameters (without position embeddings) | "
        f"{len(split.train):,} train / {len(split.val):,} val characters | vocabulary {model_cfg.vocab_size} | device {dev.type}"
    )
    if env.world_size > 1:
        log(f"data parallel: {env.world_size} processes ({dist.get_backend()}) x {train_cfg.batch_size} windows = "
            f"{env.world_size * train_cfg.batch_size} windows a step")
    t0 = time.perf_counter()

    def save(path: Path, step: int) -> Path:
        return save_checkpoint(path, model=model, optimizer=opt, step=step, generator=gen, tokenizer=split.tokenizer, meta=meta)

    def on_eval(step: int, val_loss: float) -> None:
        if not env.is_main:  # every rank holds the same weights; rank 0 writes them
            return
        saved = [ckpt_path]
        if val_loss < meta["best_val"]:  # the lowest validation loss so far: also best.pt (for sampling)
            meta["best_val"] = val_loss
            saved.append(save(out / "best.pt", step))
        save(ckpt_path, step)
        log(f"step {step}/{train_cfg.steps} | val loss {val_loss:.4f} | {time.perf_counter() - t0:.1f} s | "
             f"saved {', '.join(str(p) for p in saved)}")

    if start >= train_cfg.steps:
        log(f"{ckpt_path} already holds {start} steps (asked for {train_cfg.steps}; pass a larger --steps to continue)")
        if env.world_size > 1:
            dist.destroy_process_group()
        return 0
    try:
        hist = train_sequence_lm(
            model, train, train_cfg, optimizer=opt, generator=gen, start_step=start,
            val_tokens=val, eval_every=args.eval_every, on_eval=on_eval, rank=env.rank, world_size=env.world_size,
        )
    finally:
        if env.world_size > 1:
            dist.destroy_process_group()
    log(
        f"done: val loss {hist.val_loss[-1]:.4f} (best {meta['best_val']:.4f}, in {out / 'best.pt'}) | "
        f"{hist.tokens / hist.train_seconds:,.0f} training tokens/s"
    )
    return 0


def _load(family: Family, ckpt: str, dev: torch.device) -> torch.nn.Module:
    model = family.model_class(checkpoint_config(ckpt, family.config_class)).to(dev)  # refuses another family's file
    load_checkpoint(ckpt, model=model, map_location=dev)
    return model.eval()


def _sample(family: Family, args: argparse.Namespace) -> int:
    dev = torch.device(args.device) if args.device else default_device()
    model = _load(family, args.ckpt, dev)
    tokenizer = read_checkpoint(args.ckpt)["tokenizer"]
    if tokenizer is None:
        raise ValueError(f"checkpoint {args.ckpt} holds no tokenizer: it was not written by `dlscratch {family.command} train`")
    tok = CharTokenizer(tokenizer["itos"])
    if not args.prompt:
        raise ValueError("--prompt must hold at least one character")
    idx = torch.tensor([tok.encode(args.prompt)], dtype=torch.long, device=dev)  # (1, T0)
    gen = torch.Generator().manual_seed(args.seed)
    out = model.generate(
        idx, args.tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        generator=gen, use_cache=not args.no_cache,
    )
    print(tok.decode(out[0].tolist()))
    return 0


def _export(family: Family, args: argparse.Namespace) -> int:
    assert family.export is not None
    model = _load(family, args.ckpt, torch.device("cpu"))
    folder = family.export(model, args.out, force=args.force)
    print(f"wrote {folder}: {', '.join(sorted(p.name for p in Path(folder).iterdir()))}")
    return 0


def build_parser(family: Family) -> argparse.ArgumentParser:
    r"""The parser of ``family``'s command: ``train``, ``sample`` and, with an export function, ``export``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m dlscratch {family.command}", description=f"Train a character-level {family.title} and sample from it."
    )
    sub = parser.add_subparsers(dest="action", required=True)

    tr = sub.add_parser("train", help=f"train a character-level {family.model_class.__name__} and write OUT/ckpt.pt")
    tr.add_argument("--preset", choices=sorted(family.presets), default="cpu", help="starting configuration (default: cpu)")
    tr.add_argument("--data", default=None, help="a UTF-8 text file (default: TinyShakespeare)")
    tr.add_argument("--out", default=f"out-{family.command}", help=f"directory for ckpt.pt (default: out-{family.command})")
    tr.add_argument("--resume", action="store_true", help="continue the run saved in OUT/ckpt.pt exactly (--steps may grow)")
    tr.add_argument("--eval-every", type=int, default=250, help="validate and checkpoint every N steps (and at the end)")
    tr.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    tr.add_argument("--kernels", choices=("fused", "written"), default="fused",
                    help="PyTorch's fused attention and norm kernels, or the written-out ones (same maths)")
    tr.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="mixed precision: bf16 autocast, or fp16 with loss scaling on a GPU without bf16 (default: the preset's)")
    for name in family.model_flags + TRAIN_FLAGS:
        kind = float if name in FLOAT_FLAGS else int
        tr.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=f"override the preset's {name}")

    sa = sub.add_parser("sample", help="continue a prompt with a trained checkpoint")
    sa.add_argument("--ckpt", required=True, help=f"a checkpoint written by `{family.command} train`")
    sa.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    sa.add_argument("--tokens", type=int, default=500, help="characters to generate")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--temperature", type=float, default=1.0)
    sa.add_argument("--top-k", type=int, default=None)
    sa.add_argument("--top-p", type=float, default=None)
    sa.add_argument("--no-cache", action="store_true", help="recompute the whole context at every step")
    sa.add_argument("--device", default=None)

    if family.export is not None:
        ex = sub.add_parser("export", help="write a Hugging Face folder (config.json + model.safetensors)")
        ex.add_argument("--ckpt", required=True, help=f"a checkpoint written by `{family.command} train`")
        ex.add_argument("--out", required=True, help="the folder to write (must be empty or absent)")
        ex.add_argument("--force", action="store_true", help="replace a non-empty folder")
    return parser


def run(family: Family, argv: Sequence[str] | None = None) -> int:
    r"""Run one of ``family``'s subcommands; errors are raised (``python -m dlscratch`` prints them)."""
    args = build_parser(family).parse_args(argv)
    return {"train": _train, "sample": _sample, "export": _export}[args.action](family, args)
