"""The base layer: registries, errors, atomic checksummed files, metrics, run information.

Imports nothing else of dcbench; every other layer may import it.
"""
