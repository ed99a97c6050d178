"""The embedded synthetic world: a small open-domain world a tiny model cannot already know.

Build it with `python -m coa_jax world --out DIR [--seed S] [--size tiny|small|medium]`, or
`build_world(DIR, seed, size)`; read it back with `load_world(DIR)`. See `build` for the files,
`schema` for the data model, `leakage` for the no-leakage rules.
"""

from coa_jax.data.world.build import BuiltWorld, build_world, generate, write_world
from coa_jax.data.world.prompt import INSTRUCTION, to_qa_prompt, user_prompt
from coa_jax.data.world.schema import ChainStep, Entity, Fact, Passage, Question, World
from coa_jax.data.world.sizes import SIZES, WorldSize
from coa_jax.data.world.store import WorldFiles, load_world
from coa_jax.data.world.tokenizer import ACTION_TAGS, CHAT_SPECIAL_TOKENS, CHAT_TEMPLATE

__all__ = [
    "ACTION_TAGS",
    "BuiltWorld",
    "CHAT_SPECIAL_TOKENS",
    "CHAT_TEMPLATE",
    "ChainStep",
    "Entity",
    "Fact",
    "INSTRUCTION",
    "Passage",
    "Question",
    "SIZES",
    "World",
    "WorldFiles",
    "WorldSize",
    "build_world",
    "generate",
    "load_world",
    "to_qa_prompt",
    "user_prompt",
    "write_world",
]
