"""Config files load; overrides are typed; every validation error names the offending key."""

import importlib.util
import pathlib

import pytest

from coa_jax.config import Config, ConfigError, MeshConfig, apply_overrides, load_config, validate
from coa_jax.config.loading import from_dict, to_dict
from coa_jax.sharding.mesh import resolve_mesh_shape

CONFIGS = sorted((pathlib.Path(__file__).parent.parent / "configs").glob("*.py"))


def _variants(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VARIANTS


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_file_and_variant_loads(path):
    lines = path.read_text().splitlines()
    assert any(line.strip().startswith("Run:") for line in lines[:6]), f"{path.name} must start with its command"
    for variant in _variants(path):
        spec = str(path) if variant is None else f"{path}:{variant}"
        cfg = load_config(spec)
        assert isinstance(cfg, Config)
        assert to_dict(from_dict(Config, to_dict(cfg))) == to_dict(cfg)


def test_unknown_variant_is_refused():
    with pytest.raises(ConfigError, match="variant"):
        load_config(f"{CONFIGS[0]}:nope")


def test_overrides_are_typed():
    cfg = apply_overrides(Config(), ["model.num_layers=3", "sampling.temperature=0.5", "model.qkv_bias=false",
                                     "model.rope_scaling.kind=llama3", "init=/tmp/x"])
    assert cfg.model.num_layers == 3 and cfg.sampling.temperature == 0.5 and cfg.model.qkv_bias is False
    assert cfg.model.rope_scaling.kind == "llama3" and cfg.init == "/tmp/x"


@pytest.mark.parametrize("override, key", [
    ("model.num_layer=3", "model.num_layer"),
    ("model.num_layers=three", "model.num_layers"),
    ("sampling.top_p=x", "sampling.top_p"),
    ("model=3", "model"),
    ("nosuch.key=1", "nosuch.key"),
    ("model.num_layers", "model.num_layers"),
])
def test_bad_overrides_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        apply_overrides(Config(), [override])
    assert err.value.problems[0][0] == key


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'num_layers'"):
        apply_overrides(Config(), ["model.num_layer=3"])


@pytest.mark.parametrize("override, key", [
    ("model.num_kv_heads=3", "model.num_kv_heads"),
    ("model.dtype=float64", "model.dtype"),
    ("model.family=gpt2", "model.family"),
    ("model.rope_scaling.kind=yarn", "model.rope_scaling.kind"),
    ("sampling.top_p=0", "sampling.top_p"),
    ("sampling.temperature=-1", "sampling.temperature"),
    ("mesh.fsdp=0", "mesh.fsdp"),
    ("sft2.batch_rows=0", "sft2.batch_rows"),
    ("sft2.micro_batches=3", "sft2.micro_batches"),
    ("rl.env=both", "rl.env"),
    ("rollout.env=dream", "rollout.env"),
    ("rl.grpo.kl_estimator=k9", "rl.grpo.kl_estimator"),
    ("sft1.optim.decay=step", "sft1.optim.decay"),
    ("env.search=http", "env.url"),
    ("world.size=huge", "world.size"),
])
def test_impossible_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        validate(apply_overrides(Config(), [override]))
    assert key in [k for k, _ in err.value.problems]


def test_all_problems_are_reported_at_once():
    cfg = apply_overrides(Config(), ["model.num_kv_heads=3", "sampling.top_k=-2"])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert {k for k, _ in err.value.problems} >= {"model.num_kv_heads", "sampling.top_k"}


def test_mesh_must_tile_the_devices():
    assert resolve_mesh_shape(MeshConfig(data=-1, fsdp=2, tensor=2), 8) == (2, 2, 2)
    with pytest.raises(ConfigError, match="mesh.data"):
        resolve_mesh_shape(MeshConfig(data=-1, fsdp=3), 8)
    with pytest.raises(ConfigError, match="mesh"):
        resolve_mesh_shape(MeshConfig(data=2, fsdp=2, tensor=1), 8)


def test_batch_must_split_over_data_and_fsdp():
    from coa_jax.sharding.mesh import validate_for_devices

    cfg = apply_overrides(Config(), ["mesh.data=-1", "mesh.fsdp=2", "sft2.batch_rows=12", "rl.prompts_per_step=8",
                                     "rl.group_size=5"])
    with pytest.raises(ConfigError) as err:
        validate_for_devices(cfg, 8)
    assert err.value.problems[0][0] == "sft2.batch_rows"
    assert validate_for_devices(apply_overrides(cfg, ["sft2.batch_rows=16"]), 8) == (4, 2, 1)
