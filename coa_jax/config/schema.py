"""The configuration schema: frozen dataclasses, one per concern, each listing its own errors.

Every section has `errors() -> list[(field, message)]`; `coa_jax.config.validate` walks the tree
and raises one ConfigError naming each offending key by its full dotted path.
"""

from __future__ import annotations

import dataclasses

from coa_jax.data.teacher.config import TeacherConfig
from coa_jax.models.model_config import ModelConfig
from coa_jax.rollout.config import RolloutConfig
from coa_jax.rollout.evaluation import EvalSettings
from coa_jax.train.copy_warmup import CopyWarmupConfig
from coa_jax.train.grpo_loss import GRPOParams
from coa_jax.train.loop import LoopConfig
from coa_jax.train.losses import ContrastiveParams
from coa_jax.train.optimizer import OptimConfig

WORLD_SIZES = ("tiny", "small", "medium")
RL_ENVS = ("sim", "real", "schedule")
SEARCH_BACKENDS = ("bm25", "http")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Device mesh axis sizes; one may be -1 to take the remaining devices."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1

    def errors(self) -> list[tuple[str, str]]:
        out = []
        for name in ("data", "fsdp", "tensor"):
            v = getattr(self, name)
            if v == 0 or v < -1:
                out.append((name, f"must be a positive size or -1, got {v}"))
        if [self.data, self.fsdp, self.tensor].count(-1) > 1:
            out.append(("data", "at most one mesh axis may be -1"))
        return out


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Token sampling: greedy when temperature == 0."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    max_new_tokens: int = 64
    seed: int = 0

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.temperature < 0:
            out.append(("temperature", f"must be >= 0, got {self.temperature}"))
        if not 0 < self.top_p <= 1:
            out.append(("top_p", f"must be in (0, 1], got {self.top_p}"))
        if self.top_k < 0:
            out.append(("top_k", f"must be >= 0, got {self.top_k}"))
        if self.max_new_tokens <= 0:
            out.append(("max_new_tokens", f"must be > 0, got {self.max_new_tokens}"))
        return out


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """The embedded synthetic world (ignored when training on real data)."""

    dir: str = ""  # an existing world directory; "" = build one under the run's output directory
    size: str = "small"
    seed: int = 0
    prompt_style: str = "compact"  # compact | reference (the reference's long instruction)

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.size not in WORLD_SIZES:
            out.append(("size", f"must be one of {WORLD_SIZES}, got {self.size!r}"))
        if self.prompt_style not in ("compact", "reference"):
            out.append(("prompt_style", f"must be compact or reference, got {self.prompt_style!r}"))
        return out


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """The tools the agent can call."""

    search: str = "bm25"  # bm25: in-process index over `corpus`; http: a FlashRAG-compatible server at `url`
    corpus: str = ""  # "" = the world's corpus.jsonl
    url: str = ""
    topk: int = 3
    max_obs_tokens: int = 256
    timeout_s: float = 10.0
    retries: int = 2

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.search not in SEARCH_BACKENDS:
            out.append(("search", f"must be one of {SEARCH_BACKENDS}, got {self.search!r}"))
        if self.search == "http" and not self.url.startswith(("http://", "https://")):
            out.append(("url", f"search=http needs an http(s) URL, got {self.url!r}"))
        if self.topk <= 0:
            out.append(("topk", f"must be > 0, got {self.topk}"))
        if self.max_obs_tokens <= 0:
            out.append(("max_obs_tokens", f"must be > 0, got {self.max_obs_tokens}"))
        if self.timeout_s <= 0:
            out.append(("timeout_s", f"must be > 0, got {self.timeout_s}"))
        return out


@dataclasses.dataclass(frozen=True)
class SFTConfig:
    """One supervised stage (the base reasoner, SFT-1 contrastive, SFT-2/3 next-token)."""

    epochs: float = 2.0
    steps: int = 0  # > 0: exactly this many optimizer steps (overrides epochs)
    batch_rows: int = 16  # packed rows (SFT-2/3) or pairs (SFT-1) per optimizer step
    micro_batches: int = 1  # gradient accumulation
    max_len: int = 1024
    optim: OptimConfig = OptimConfig(lr=5e-5)
    contrastive: ContrastiveParams = ContrastiveParams()
    copy_warmup: CopyWarmupConfig = CopyWarmupConfig()  # random init only (the base reasoner)
    loop: LoopConfig = LoopConfig()

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.epochs <= 0 and self.steps <= 0:
            out.append(("epochs", "set epochs > 0 or steps > 0"))
        if self.batch_rows <= 0 or self.micro_batches <= 0:
            out.append(("batch_rows", "batch_rows and micro_batches must be > 0"))
        elif self.batch_rows % self.micro_batches:
            out.append(("micro_batches", f"must divide batch_rows={self.batch_rows}, got {self.micro_batches}"))
        if self.max_len <= 1:
            out.append(("max_len", f"must be > 1, got {self.max_len}"))
        return out


@dataclasses.dataclass(frozen=True)
class RLConfig:
    """GRPO in the simulated and/or real environment (SPEC 2.4)."""

    steps: int = 96
    prompts_per_step: int = 48
    group_size: int = 5  # G
    updates_per_batch: int = 1  # optimizer passes over each rollout batch (PPO epochs)
    micro_batches: int = 1
    env: str = "schedule"  # sim | real | schedule (sim for the first sim_fraction of steps, then real)
    sim_fraction: float = 5 / 6
    reward: str = "autocoa"
    normalize_std: bool = True
    filter_degenerate: bool = False  # drop groups whose rewards are all equal from the update
    # dynamic sampling: roll out oversample x prompts_per_step prompts, update on prompts_per_step of
    # their groups (those whose rewards differ first); 1 = off
    oversample: int = 1
    recompute_old_logprobs: bool = True  # teacher-forced old log-probs instead of the sampler's
    ref_offload: bool = False  # keep the reference weights in host memory between uses
    grpo: GRPOParams = GRPOParams()
    optim: OptimConfig = OptimConfig(lr=7e-7)
    loop: LoopConfig = LoopConfig()

    def errors(self) -> list[tuple[str, str]]:
        out = []
        for name in ("steps", "prompts_per_step", "group_size", "updates_per_batch", "micro_batches", "oversample"):
            if getattr(self, name) <= 0:
                out.append((name, f"must be > 0, got {getattr(self, name)}"))
        if self.env not in RL_ENVS:
            out.append(("env", f"must be one of {RL_ENVS}, got {self.env!r}"))
        if not 0 <= self.sim_fraction <= 1:
            out.append(("sim_fraction", f"must be in [0, 1], got {self.sim_fraction}"))
        rows = self.prompts_per_step * self.group_size
        if self.micro_batches > 0 and rows % self.micro_batches:
            out.append(("micro_batches", f"must divide prompts_per_step*group_size={rows}"))
        return out


REFERENCE_PLACES = ("policy", "rollout")


@dataclasses.dataclass(frozen=True)
class RolesConfig:
    """Where the GRPO roles run: by default every role shares the run's mesh.

    With `rollout_devices` N > 0 the rollout (sampler) gets the last N devices as its own mesh
    (`rollout_mesh`) and the policy trains on the others; the trainer's weights are copied to the
    sampler's layout after each update. `reference` says which device set holds the frozen
    reference model (on "rollout" it is copied to the policy's devices for its log-probs).
    """

    rollout_devices: int = 0
    rollout_mesh: MeshConfig = MeshConfig(data=-1)
    reference: str = "policy"

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.rollout_devices < 0:
            out.append(("rollout_devices", f"must be >= 0, got {self.rollout_devices}"))
        if self.reference not in REFERENCE_PLACES:
            out.append(("reference", f"must be one of {REFERENCE_PLACES}, got {self.reference!r}"))
        return out  # rollout_mesh's own errors come from its section


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one run needs."""

    name: str = "default"
    seed: int = 0
    model: ModelConfig = ModelConfig()
    init: str = ""  # checkpoint to start from: HF directory, GGUF file or coa_jax run; "" = random init
    tokenizer: str = ""  # tokenizer directory; "" = the one beside `init` (or the world's)
    mesh: MeshConfig = MeshConfig()
    roles: RolesConfig = RolesConfig()
    sampling: SamplingConfig = SamplingConfig()
    world: WorldConfig = WorldConfig()
    teacher: TeacherConfig = TeacherConfig()  # what the scripted teacher writes for the world
    env: EnvConfig = EnvConfig()
    rollout: RolloutConfig = RolloutConfig()
    reasoner: SFTConfig = SFTConfig(optim=OptimConfig(lr=3e-3, warmup_steps=20))
    sft1: SFTConfig = SFTConfig(optim=OptimConfig(lr=5e-6))
    sft2: SFTConfig = SFTConfig(optim=OptimConfig(lr=5e-5))
    sft3: SFTConfig = SFTConfig(optim=OptimConfig(lr=5e-5))
    rl: RLConfig = RLConfig()
    eval: EvalSettings = EvalSettings()

    def errors(self) -> list[tuple[str, str]]:
        return []
