"""Ray-free batch transforms: each stage is a callable object, dict of columns in → dict of columns out.

One row in, one row out: filters annotate `reject_stage` / `reject_reason` (None = keep) and later stages pass
rejected rows through untouched. The pipeline (`scalequest.pipeline`) wires them into Ray Data; tests call them on
literal dicts.
"""
