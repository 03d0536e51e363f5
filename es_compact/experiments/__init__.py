"""The papers' experiments: each module builds configs, runs them and writes rows under results/."""
