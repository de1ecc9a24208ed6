"""Fixtures for the tests and the benchmarks (the tiny random inpainting model). Production
code never imports this package; an import-linter contract says so."""
