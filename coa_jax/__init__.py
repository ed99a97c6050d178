"""coa_jax: train agent models (reasoning LLMs that call tools mid-thought) with AutoCoA in JAX."""

__version__ = "0.1.0"
