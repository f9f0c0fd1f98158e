"""The HTTP API on Ray Serve: one LLM deployment per model (generators, judge, solver), one scorer deployment
(reward + difficulty models), and a FastAPI ingress that runs the very same stage objects as the batch
pipeline.

  app.py          config → Serve application (`build_app` for `serve run/deploy`), Serve YAML, `run_serve`
  deployments.py  LLMServer (vLLM's async engine) and ScorerServer (reward / difficulty models)
  clients.py      the `Engine` and scorer interfaces over deployment handles, for stages in the ingress
  questions.py    QuestionService: draw candidates and filter them with scalequest.stages
  schemas.py      request / response models; limits from `serve.limits`
  ingress.py      the ingress deployment: what each route does (validation, limits, auth check)
  routes.py       the FastAPI app: routes, auth + body-size middleware, error format

Tests: `pytest tests/serve` (starts Serve on a tiny random model).
"""
