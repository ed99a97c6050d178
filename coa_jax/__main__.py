"""`python -m coa_jax <command>`."""

from coa_jax import host_defaults

host_defaults.apply()  # before anything imports JAX (see coa_jax/host_defaults.py)

from coa_jax.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
