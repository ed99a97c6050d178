"""optax AdamW with warmup + decay, global-norm clipping and optional freezing by parameter path."""

from __future__ import annotations

import dataclasses
import re

import jax
import optax

DECAYS = ("cosine", "linear", "constant")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    lr: float = 5e-5
    warmup_steps: int = 0
    decay: str = "cosine"
    min_lr_ratio: float = 0.0  # final lr = lr * min_lr_ratio
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    grad_clip: float = 1.0  # global norm; 0 disables
    freeze: tuple[str, ...] = ()  # regexes on "/"-joined param paths, e.g. "embedding", "layers/attn/.*"

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.lr <= 0:
            out.append(("lr", f"must be > 0, got {self.lr}"))
        if self.decay not in DECAYS:
            out.append(("decay", f"must be one of {DECAYS}, got {self.decay!r}"))
        if self.warmup_steps < 0:
            out.append(("warmup_steps", f"must be >= 0, got {self.warmup_steps}"))
        if not 0 <= self.min_lr_ratio <= 1:
            out.append(("min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}"))
        if self.grad_clip < 0:
            out.append(("grad_clip", f"must be >= 0, got {self.grad_clip}"))
        for pattern in self.freeze:
            try:
                re.compile(pattern)
            except re.error as err:
                out.append(("freeze", f"bad regex {pattern!r}: {err}"))
        return out


def schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    total = max(total_steps, 1)
    warm = min(cfg.warmup_steps, total)
    end = cfg.lr * cfg.min_lr_ratio
    if cfg.decay == "constant":
        main = optax.constant_schedule(cfg.lr)
    elif cfg.decay == "linear":
        main = optax.linear_schedule(cfg.lr, end, max(total - warm, 1))
    else:
        main = optax.cosine_decay_schedule(cfg.lr, max(total - warm, 1), alpha=cfg.min_lr_ratio)
    if not warm:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warm), main], [warm])


def path_labels(params, patterns: tuple[str, ...]):
    """'frozen' or 'trained' per leaf, by full-match of any regex against the '/'-joined path."""
    compiled = [re.compile(p) for p in patterns]

    def name(path) -> str:
        return "/".join(str(getattr(k, "key", k)) for k in path)

    names = [name(path) for path, _ in jax.tree_util.tree_leaves_with_path(params)]
    unused = [p for p, c in zip(patterns, compiled) if not any(c.fullmatch(n) for n in names)]
    if unused:  # a typo would otherwise freeze nothing, silently
        raise ValueError(f"optim.freeze patterns {unused} match no parameter (full match on paths such as "
                         f"{names[:3]})")
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "frozen" if any(c.fullmatch(name(path)) for c in compiled) else "trained", params)


def make_optimizer(cfg: OptimConfig, total_steps: int, params=None) -> optax.GradientTransformation:
    """The update rule; `params` (or its abstract shapes) is needed only when freezing."""
    chain = []
    if cfg.grad_clip:
        chain.append(optax.clip_by_global_norm(cfg.grad_clip))
    chain.append(optax.adamw(schedule(cfg, total_steps), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                             weight_decay=cfg.weight_decay))
    tx = optax.chain(*chain)
    if cfg.freeze:
        if params is None:
            raise ValueError("freezing needs the params tree to label its leaves")
        tx = optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, path_labels(params, cfg.freeze))
    return tx
