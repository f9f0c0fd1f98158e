"""Training jobs that turn models into ScaleQuest's question generators and scorers, on Ray Train + DeepSpeed.

- `data`: question sources (GSM8K / MATH train files, any JSONL/Parquet, HF dataset ids) → clean, de-duplicated text.
- `launcher`: the one place that knows Ray Train and DeepSpeed (workers, CPU workarounds, checkpoints, export);
  `loop_utils`: the one worker-loop runtime (typed loop configs, TrainingArguments, resume, export) of every job.
- `qft`: question fine-tuning (`scalequest train qft --config tiny`).
- `qpo_data` / `rewrite` / `qpo_build` / `qpo`: QPO preference pairs (sample → optimizer rewrite → judge → pair) and
  DPO (`scalequest train qpo --config tiny`); their engines are the pipeline's engine actors
  (`pipeline.engine_pool.EngineSet`), as are the fail-rate labels'.
- `difficulty_labels` / `difficulty`: fail-rate or MATH-level labels and the regression scorer
  (`scalequest train difficulty --config tiny`).

Test: `pytest tests/train` (the Ray Train + DeepSpeed runs are marked `ray` and `slow`).
"""
