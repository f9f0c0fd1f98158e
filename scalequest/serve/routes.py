"""HTTP layer of the ingress: the FastAPI app with its routes, the auth + body-size middleware and the error
handlers that turn every request problem into a 4xx in OpenAI's error format. `build_api(ingress)` is called
once per ingress replica (Serve's late-bound ASGI app), so limits and the token come from that replica's
config.

Server-side failures answer 503 (a model's engine or replica is down: retry) or 500 (anything else) with the
request id only: the exception and its traceback go to the replica's log under that id, never to the client.
The id is Serve's `x-request-id` (Serve also returns it as a response header and logs it in its access log).
"""

from __future__ import annotations

import json
import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from scalequest.serve.schemas import (
    APIError,
    ChatRequest,
    CompletionRequest,
    QuestionsRequest,
    QuestionsResponse,
    ScoreRequest,
    ScoreResponse,
)

log = logging.getLogger(__name__)
OPEN_PATHS = ("/healthz",)


def build_api(ingress) -> FastAPI:
    """The FastAPI app over an `Ingress` (anything with its methods: questions, score, models, complete,
    authorized, and `limits`)."""
    app = FastAPI(title="ScaleQuest API", version="0.1.0",
                  description="On-demand math questions (and solutions) from ScaleQuest's generators, "
                  "filtered by the same stages as the batch pipeline; OpenAI-compatible completions for "
                  "every hosted model.")
    _add_guards(app, ingress)
    _add_error_handlers(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz():
        """200 with `{"status": "ok", "deployments": {name: "ok"}}` when every model deployment answers; 503
        with `"status": "degraded"` and the failing ones marked "unavailable" otherwise (no token needed)."""
        body = await ingress.health()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.post("/v1/questions", response_model=QuestionsResponse, tags=["scalequest"])
    async def questions(body: QuestionsRequest) -> dict:
        """Draw candidates until `n` pass the requested filters (or the candidate budget is spent)."""
        return await ingress.questions(body)

    @app.post("/v1/score", response_model=ScoreResponse, tags=["scalequest"])
    async def score(body: ScoreRequest) -> dict:
        """Reward-model scores and answer agreement for responses to one question."""
        return await ingress.score(body)

    @app.get("/v1/models", tags=["openai"])
    async def models() -> dict:
        """The hosted generation models (keys of the config's `models`)."""
        return ingress.models()

    @app.post("/v1/completions", tags=["openai"])
    async def completions(body: CompletionRequest) -> dict:
        """OpenAI-compatible text completion (`stream: true` answers with server-sent events)."""
        return await ingress.complete(body, chat=False)

    @app.post("/v1/chat/completions", tags=["openai"])
    async def chat_completions(body: ChatRequest) -> dict:
        """OpenAI-compatible chat completion with the model's own chat template (`stream: true` answers with
        server-sent events)."""
        return await ingress.complete(body, chat=True)

    return app


def _error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
    return JSONResponse(APIError(status, message, param, kind).body(), status_code=status)


def request_id(request: Request) -> str:
    """Serve's request id (its proxy sets `x-request-id`), or a new one outside Serve."""
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    return rid


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says a model's engine or replica is down, so a retry can succeed."""
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError

    from scalequest.errors import EngineUnavailable

    kinds = (EngineUnavailable, RayActorError, BackPressureError, DeploymentUnavailableError,
             ReplicaUnavailableError)
    seen = 0
    while exc is not None and seen < 10:  # Ray wraps a replica's exception in RayTaskError (a subclass of both)
        if isinstance(exc, kinds):
            return True
        exc, seen = getattr(exc, "cause", None) or exc.__cause__, seen + 1
    return False


def _add_guards(app: FastAPI, ingress) -> None:
    max_bytes = ingress.limits.max_body_bytes

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path[len(request.scope.get("root_path", "")):] or "/"
        if path not in OPEN_PATHS and not ingress.authorized(request.headers.get("authorization")):
            resp = _error(401, "missing or wrong bearer token; send 'Authorization: Bearer <token>'",
                          kind="authentication_error")
            resp.headers["WWW-Authenticate"] = "Bearer"
            return resp
        length = request.headers.get("content-length")
        too_big = f"body: larger than {max_bytes} bytes (serve.limits.max_body_bytes); send less"
        if length is not None:
            if not length.isdigit():
                return _error(400, f"Content-Length: '{length}' is not a number")
            if int(length) > max_bytes:
                return _error(413, too_big, "body")
        elif request.method in ("POST", "PUT", "PATCH") and len(await request.body()) > max_bytes:
            return _error(413, too_big, "body")
        return await call_next(request)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request, exc: APIError):
        if exc.status < 500:
            return JSONResponse(exc.body(), status_code=exc.status)
        rid = request_id(request)
        log.error("request %s: %d %s: %s", rid, exc.status, exc.message, exc.detail)  # details stay in the log
        return _error(exc.status, f"{exc.message} (request id {rid})", kind=exc.kind)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        problems = [_describe(e) for e in exc.errors()]
        param = ".".join(str(p) for p in exc.errors()[0]["loc"][1:]) if exc.errors() else None
        return _error(400, "; ".join(problems), param or None)

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(exc.status_code, str(exc.detail), kind=kind)

    @app.exception_handler(Exception)
    async def internal(request, exc: Exception):
        rid = request_id(request)
        if is_unavailable(exc):
            log.warning("request %s: a model deployment is unavailable", rid, exc_info=exc)
            resp = _error(503, f"a model is temporarily unavailable (its engine is restarting); retry in a few "
                          f"seconds (request id {rid})", kind="service_unavailable")
            resp.headers["Retry-After"] = "10"
            return resp
        log.error("request %s: unhandled error", rid, exc_info=exc)
        return _error(500, f"internal error; the server log has the details under request id {rid}",
                      kind="server_error")


def _describe(err: dict) -> str:
    """One validation problem as 'key: what is wrong (got value)'."""
    loc = ".".join(str(p) for p in err["loc"][1:]) or "body"
    if err["type"] == "json_invalid":
        return f"body: not valid JSON ({err.get('ctx', {}).get('error', 'parse error')}); send a JSON object"
    if err["type"] == "model_attributes_type" or (err["type"] == "dict_type" and loc == "body"):
        return "body: expected a JSON object"
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown field; remove it or fix its spelling"
    if err["type"] == "missing":
        return f"{loc}: required but missing"
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {json.dumps(got, default=str)[:80]})"
    return f"{loc}: {err['msg']}{shown}"
