r"""Architecture diagrams drawn from the modules themselves, with matplotlib.

A diagram is read off a built layer or model, never pasted: :func:`layer_steps` walks a
Transformer block (pre-LN or post-LN, with or without cross-attention, whatever its norm and
feed-forward network) and lists its operations bottom to top, exactly in the order its
``forward`` applies them; :func:`block_diagram` draws that list, with the residual connections.
:func:`decoder_lm_diagram` draws a decoder-only language model (GPT, LLaMA) next to its first
block, and :func:`seq2seq_training_diagram` the data flow of encoder-decoder training with
teacher forcing. Figures use the book's white card, so they read on light and dark pages, and
they are ordinary cell outputs, so they show in Colab too. Introduced in chapters 15-17.

The modules are inspected by their attributes (``norm_first``, ``attn``, ``cross_attn``,
``mlp``, ``blocks``, ...), so this module imports no model code.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import nn

__all__ = ["Step", "layer_steps", "block_diagram", "decoder_lm_diagram", "seq2seq_training_diagram"]

# fill colour of each kind of box (light tints of the book's palette; text stays dark)
FILL = {
    "attn": "#cfe3f3",
    "cross": "#d9d2ec",
    "ffn": "#fbe3c0",
    "norm": "#f7f1b8",
    "add": "#ffffff",
    "embed": "#cdebdf",
    "head": "#f4d3e5",
    "io": "#eeeeee",
    "loss": "#f6cdbd",
}
INK = "#222222"


@dataclass(frozen=True)
class Step:
    r"""One operation of a block, as drawn: its kind (a key of ``FILL``) and its label."""

    kind: str  # attn, cross, ffn, norm, add, ...
    label: str  # the text in the box


def _norm_name(norm: nn.Module) -> str:
    name = type(norm).__name__.replace("Fused", "")
    return {"LayerNorm": "LayerNorm", "RMSNorm": "RMSNorm"}.get(name, name)


def _attn_label(attn: nn.Module, kind: str) -> str:
    nh = getattr(attn, "num_heads", "?")
    nkv = getattr(attn, "num_kv_heads", nh)
    heads = f"{nh} heads" if nkv == nh else f"{nh} query / {nkv} kv heads"
    if kind == "cross":
        return f"cross-attention to memory ({heads})"
    masked = "masked " if getattr(attn, "causal", False) else ""
    window = getattr(attn, "window", None)
    extra = f", window {window}" if window else ""
    return f"{masked}self-attention ({heads}{extra})"


def _ffn_label(mlp: nn.Module) -> str:
    name = type(mlp).__name__
    hidden = None
    for attr in ("up", "w1", "gate", "fc1", "linear1"):
        lin = getattr(mlp, attr, None)
        if isinstance(lin, nn.Linear):
            hidden = lin.out_features
            break
    act = getattr(mlp, "activation", None)
    act = act if isinstance(act, str) else None
    act = {"relu": "ReLU", "gelu": "GELU", "gelu_tanh": "GELU-tanh", "silu": "SiLU"}.get(act, act) if act else None
    kind = "SwiGLU" if "swiglu" in name.lower() else (f"MLP, {act}" if act else name)
    return f"feed-forward ({kind}, F = {hidden})" if hidden else f"feed-forward ({kind})"


def layer_steps(layer: nn.Module) -> list[Step]:
    r"""The operations of a Transformer block from input to output, as its ``forward`` runs them.

    Each residual sublayer :math:`S` becomes ``norm, S, add`` (pre-LN:
    :math:`x + S(\operatorname{N}(x))`) or ``S, add, norm`` (post-LN:
    :math:`\operatorname{N}(x + S(x))`); a decoder layer (one with ``cross_attn``) has the
    cross-attention sublayer between self-attention and the feed-forward network.

    Raises:
        ValueError: if ``layer`` has no ``attn``, ``mlp``, ``norm1`` and ``norm2`` (not a block).
    """
    missing = [a for a in ("attn", "mlp", "norm1", "norm2") if not hasattr(layer, a)]
    if missing:
        raise ValueError(f"expected a Transformer block with attn, mlp, norm1 and norm2; {type(layer).__name__} lacks {missing}")
    pre = bool(getattr(layer, "norm_first", True))
    sublayers = [(layer.norm1, Step("attn", _attn_label(layer.attn, "attn")))]
    if hasattr(layer, "cross_attn"):
        sublayers.append((getattr(layer, "norm_cross"), Step("cross", _attn_label(layer.cross_attn, "cross"))))
    sublayers.append((layer.norm2, Step("ffn", _ffn_label(layer.mlp))))
    steps: list[Step] = []
    for norm, sub in sublayers:
        n = Step("norm", _norm_name(norm))
        steps += [n, sub, Step("add", "+")] if pre else [sub, Step("add", "+"), n]
    return steps


def _box(ax: Axes, x: float, y: float, text: str, kind: str, w: float = 3.7, h: float = 0.46) -> None:
    if kind == "add":
        ax.add_patch(plt.Circle((x, y), 0.17, facecolor=FILL["add"], edgecolor=INK, lw=1.0, zorder=3))
        ax.text(x, y, "+", ha="center", va="center", fontsize=11, color=INK, zorder=4)
        return
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=FILL.get(kind, FILL["io"]), edgecolor=INK, lw=1.0, zorder=3))
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5, color=INK, zorder=4)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], *, style: str = "-|>",
           ls: str = "-", rad: float = 0.0, label: str | None = None) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=10, color=INK, lw=1.0, ls=ls,
                                 connectionstyle=f"arc3,rad={rad}", zorder=2, shrinkA=0, shrinkB=0))
    if label:
        ax.text((start[0] + end[0]) / 2 + 0.08, (start[1] + end[1]) / 2, label, fontsize=7.5, color=INK, va="center")


def _gap(kind: str) -> float:
    return 0.17 if kind == "add" else 0.23  # half-height of a box, for arrows that stop at its edge


def _draw_steps(ax: Axes, steps: list[Step], pre: bool, x: float = 0.0, y0: float = 0.0, dy: float = 0.78,
                input_label: str = "x  (B, T, C)", output_label: str = "(B, T, C)") -> float:
    r"""Draw ``steps`` upwards from ``y0`` with the residual arrows; returns the top's height.

    A skip connection leaves the main path at the sublayer's input: the block's input, the
    output of the previous add (pre-LN) or of the norm after it (post-LN).
    """
    ys = [y0 + dy * (i + 1) for i in range(len(steps))]
    ax.text(x, y0 - 0.05, input_label, ha="center", va="top", fontsize=8.5, color=INK)
    prev_y, prev_kind = y0, "io"
    branch_y = y0 + 0.1  # where the current skip connection leaves the main path
    for step, y in zip(steps, ys):
        bottom = prev_y + (0.0 if prev_kind == "io" else _gap(prev_kind))
        _arrow(ax, (x, bottom), (x, y - _gap(step.kind)))
        _box(ax, x, y, step.label, step.kind)
        if step.kind == "add":  # the skip connection, round the right-hand side
            side = x + 2.2
            ax.plot([x, side, side], [branch_y, branch_y, y], color=INK, lw=1.0, zorder=1)
            _arrow(ax, (side, y), (x + 0.17, y))
            branch_y = y + _gap("add") + 0.12
        elif step.kind == "norm" and prev_kind == "add" and not pre:
            branch_y = y + _gap("norm") + 0.12
        prev_y, prev_kind = y, step.kind
    top = ys[-1] + _gap(steps[-1].kind)
    _arrow(ax, (x, top), (x, top + 0.45))
    ax.text(x, top + 0.5, output_label, ha="center", va="bottom", fontsize=8.5, color=INK)
    return top + 0.8


def _frame(ax: Axes, xlim: tuple[float, float], ylim: tuple[float, float], title: str | None) -> None:
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10, color=INK)


def block_diagram(layer: nn.Module, ax: Axes | None = None, title: str | None = None) -> Axes:
    r"""Draw one Transformer block, read off the module with :func:`layer_steps`.

    A decoder layer also gets the encoder's memory as a second input of its cross-attention.
    """
    steps = layer_steps(layer)
    pre = bool(getattr(layer, "norm_first", True))
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 0.52 * len(steps) + 1.6))
    top = _draw_steps(ax, steps, pre)
    if hasattr(layer, "cross_attn"):
        y = 0.78 * (next(i for i, s in enumerate(steps) if s.kind == "cross") + 1)
        ax.text(-3.05, y - 0.55, "memory\n(B, S, C)", ha="center", va="center", fontsize=8, color=INK)
        _arrow(ax, (-3.05, y - 0.3), (-1.85, y), rad=-0.25)
    prefix = "pre-LN" if pre else "post-LN"
    _frame(ax, (-3.6, 2.8), (-0.45, top), title or f"{prefix} {type(layer).__name__}")
    return ax


def decoder_lm_diagram(model: nn.Module) -> Figure:
    r"""A decoder-only language model (left) and its first block (right), read off ``model``.

    Reads ``blocks``, ``norm_f`` and ``lm_head``; a ``wpe`` table means learned positions, none
    means positions inside attention (RoPE, ALiBi); a head that shares the token embedding's
    tensor is drawn as tied.

    Raises:
        ValueError: if ``model`` lacks ``blocks``, ``norm_f`` or ``lm_head``.
    """
    missing = [a for a in ("blocks", "norm_f", "lm_head") if not hasattr(model, a)]
    if missing:
        raise ValueError(f"expected a decoder LM with blocks, norm_f and lm_head; {type(model).__name__} lacks {missing}")
    cfg = getattr(model, "config", None)
    V, C = model.lm_head.out_features, model.lm_head.in_features
    L = len(model.blocks)
    emb = next((m for n, m in model.named_children() if isinstance(m, nn.Embedding) and m.num_embeddings == V), None)
    learned_pos = isinstance(getattr(model, "wpe", None), nn.Embedding)
    tied = emb is not None and model.lm_head.weight is emb.weight
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.6, 5.0), gridspec_kw={"width_ratios": [1, 1.1]})
    pos = f"+ learned positions (T ≤ {getattr(cfg, 'block_size', '?')})" if learned_pos else "positions: inside attention"
    steps = [
        ("embed", f"token embedding (V = {V}, C = {C})"),
        ("embed", pos),
        ("attn", f"{L} × block  →"),
        ("norm", f"final {_norm_name(model.norm_f)}"),
        ("head", f"linear head C → V{' (tied to the embedding)' if tied else ''}"),
        ("io", "softmax → p(next token)"),
    ]
    ys = [0.85 * (i + 1) for i in range(len(steps))]
    left.text(0, 0.3, "token ids (B, T)", ha="center", va="top", fontsize=8.5, color=INK)
    prev = 0.3
    for (kind, label), y in zip(steps, ys):
        _arrow(left, (0, prev), (0, y - 0.23))
        _box(left, 0, y, label, kind, w=3.6)
        prev = y + 0.23
    if tied:  # one (V, C) tensor serves as the embedding and as the head
        left.plot([-1.8, -2.05, -2.05, -1.8], [ys[0], ys[0], ys[4], ys[4]], ls="--", color=INK, lw=1.0)
        left.text(-2.15, (ys[0] + ys[4]) / 2, "same\n(V, C)\ntensor", fontsize=7.5, color=INK, ha="right", va="center")
    _frame(left, (-2.9, 2.1), (-0.1, ys[-1] + 0.6), f"{type(model).__name__}: {L} block{'s' if L != 1 else ''}")
    block_diagram(model.blocks[0], ax=right, title="each block")
    return fig


def seq2seq_training_diagram(source: str = "twenty one", target: tuple[str, ...] = ("2", "1"),
                             ax: Axes | None = None) -> Axes:
    r"""The data flow of one encoder-decoder training step with teacher forcing.

    The decoder reads the target shifted right (``<bos>`` first) and is scored against the target
    followed by ``<eos>``: position :math:`t` predicts :math:`y_t` from :math:`y_{<t}` and the
    whole source, so one forward pass trains every position at once.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8.4, 3.6))
    dec_in = " ".join(("<bos>",) + tuple(target))
    dec_out = " ".join(tuple(target) + ("<eos>",))
    src = textwrap.fill(f"source: {source}", 26)  # long sources wrap inside their box
    _box(ax, -3.2, 0.0, src, "io", w=2.6, h=0.3 + 0.16 * src.count("\n") + 0.16)
    _box(ax, -3.2, 1.3, "encoder (self-attention\nover the whole source)", "attn", w=2.6, h=0.7)
    _box(ax, 0.3, 1.3, "memory (B, S, C)", "io", w=2.2)
    _box(ax, 3.6, 0.0, f"decoder input: {dec_in}", "io", w=3.0)
    _box(ax, 3.6, 1.3, "decoder (masked self-attn,\ncross-attn to memory)", "cross", w=3.0, h=0.7)
    _box(ax, 3.6, 2.6, "linear head + softmax", "head", w=3.0)
    _box(ax, 3.6, 3.7, "cross-entropy", "loss", w=3.0)
    _box(ax, 0.0, 3.7, f"targets: {dec_out}", "io", w=3.0)
    _arrow(ax, (-3.2, 0.23 + 0.08 * src.count("\n")), (-3.2, 0.95))
    _arrow(ax, (-1.9, 1.3), (-0.8, 1.3))
    _arrow(ax, (1.4, 1.3), (2.1, 1.3))
    _arrow(ax, (3.6, 0.23), (3.6, 0.95))
    _arrow(ax, (3.6, 1.65), (3.6, 2.37))
    _arrow(ax, (3.6, 2.83), (3.6, 3.47))
    _arrow(ax, (1.5, 3.7), (2.1, 3.7))
    ax.text(3.6, 4.2, "one forward pass scores every target position", ha="center", fontsize=8, color=INK)
    _frame(ax, (-4.7, 5.3), (-0.5, 4.5), "encoder-decoder training (teacher forcing)")
    return ax
