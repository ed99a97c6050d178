"""The configuration schema: frozen dataclasses, one per concern, each listing its own errors.

Every section has `errors() -> list[(field, message)]`; `coa_jax.config.validate` walks the tree
and raises one ConfigError naming each offending key by its full dotted path.
"""

from __future__ import annotations

import dataclasses

from coa_jax.models.model_config import ModelConfig


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
class Config:
    """Everything one run needs."""

    name: str = "default"
    seed: int = 0
    model: ModelConfig = ModelConfig()
    init: str = ""  # checkpoint to start from: HF directory, GGUF file or coa_jax run; "" = random init
    tokenizer: str = ""  # tokenizer directory; "" = the one beside `init`
    mesh: MeshConfig = MeshConfig()
    sampling: SamplingConfig = SamplingConfig()
    batch_size: int = 8  # global batch (rows); must divide over the mesh's data x fsdp axes

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.batch_size <= 0:
            out.append(("batch_size", f"must be > 0, got {self.batch_size}"))
        return out
