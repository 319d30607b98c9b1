"""pagemill's benchmarks: each prints a table; ``python -m benchmarks.run_all --small`` runs all."""
