"""Training machinery the pose trainer (`okdhp_edge.train`) and the person detector's trainer
(`okdhp_edge.detection`) share: YAML configs with `--set` overrides and strict checks, atomic
pickle-free checkpoints, the run folder (config.yaml, metrics.jsonl), seeding and speed switches.

One copy of each, so that both CLIs answer the same mistakes the same way.
"""
