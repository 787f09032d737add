"""Scenarios use the kmschaos pytest plugin (registered through the pytest11 entry point)."""
