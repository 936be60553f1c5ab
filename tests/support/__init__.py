"""Test support: real services (a local registry, a private dockerd) as pytest fixtures."""
