"""TOML files exchanged between phases: one module per file, named after it."""
