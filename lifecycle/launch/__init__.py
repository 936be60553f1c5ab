"""App-image launch support: renders the launch table the compiled launcher (launcher/) reads."""
