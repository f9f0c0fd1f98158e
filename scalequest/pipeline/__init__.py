"""Ray Data wiring: engines as shared Ray actors, stages as `map_batches` operators, Parquet shards + run report.

Entry: `run_synthesis(cfg)` in `scalequest.pipeline.run`.
"""
