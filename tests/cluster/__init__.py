"""Cluster mode tests: a package, so the Ray cluster its conftest starts (package scope)
goes when its last test has run, before the rest of the suite."""
