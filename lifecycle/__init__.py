"""A Cloud Native Buildpacks lifecycle whose phases read and write OCI image layouts."""

__version__ = "0.1.0"
