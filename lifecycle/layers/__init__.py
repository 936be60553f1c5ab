"""Reproducible layer tars: what goes into a layer, and how it is streamed into a blob."""
