"""`python -m coa_jax <command>`."""

from coa_jax.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
