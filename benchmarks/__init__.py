"""Benchmarks of streamsnn: each writes JSON and a markdown table under benchmarks/results/."""
