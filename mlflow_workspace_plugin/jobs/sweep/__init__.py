"""Sweep jobs: search space, sampling, early termination, best trial and the sweep YAML spec (pure logic)."""
