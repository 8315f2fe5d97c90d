"""Exceptions -> OpenAI-shaped error answers: `{"error": {"message", "type", "param", "code"}}` with
`type` one of OpenAI's (invalid_request_error, authentication_error, rate_limit_error,
server_error; upstream_error for a failing cloud endpoint), `code` always a snake_case string and
`param` naming the request field to blame (null only when no one field is)."""
from __future__ import annotations

import logging
import re
from typing import Optional

from ..errors import (
    CloudError,
    ContextOverflowError,
    EdgegenError,
    InvalidRequestError,
    MissingExtraError,
    ModelNotFoundError,
    RouteError,
    TemplateError,
    TokenizerError,
)
from .schemas import APIError
from .worker import QueueFullError

log = logging.getLogger("edgegen.server")

# route -> the field holding its text (a route that has one adds itself here)
TEXT_FIELDS = {"/v1/chat/completions": "messages", "/v1/completions": "prompt", "/v1/audio/speech": "input"}


def snake_case(name: str) -> str:
    """"ModelFormatError" -> "model_format_error"; "Not Found" -> "not_found"."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def api_error(exc: BaseException, text_field: Optional[str] = "messages") -> APIError:
    """The HTTP answer for an exception raised while handling a request. `text_field`: the field
    holding the request's text (messages, prompt, input), blamed for a text that cannot be run."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, QueueFullError):
        return APIError(429, str(exc), type="rate_limit_error", code="queue_full",
                        headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, ContextOverflowError):
        return APIError(400, str(exc), param=text_field, code="context_length_exceeded")
    if isinstance(exc, InvalidRequestError):
        return APIError(400, str(exc), param=exc.param or text_field, code="invalid_value")
    if isinstance(exc, TokenizerError):
        return APIError(400, str(exc), param=text_field, code="invalid_text")
    if isinstance(exc, TemplateError):
        return APIError(400, str(exc), param=text_field, code="template_error")
    if isinstance(exc, RouteError):
        return APIError(400, str(exc), param="route", code="route_not_allowed")
    if isinstance(exc, ModelNotFoundError):
        return APIError(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, CloudError):
        return APIError(502, str(exc), type="upstream_error", code=getattr(exc, "kind", None) or "upstream_error")
    if isinstance(exc, MissingExtraError):  # e.g. speech on a server installed without edgegen[voice]
        return APIError(501, str(exc), type="server_error", code="missing_extra")
    if isinstance(exc, EdgegenError):
        return APIError(500, str(exc), type="server_error", code=snake_case(type(exc).__name__))
    log.error("unexpected error", exc_info=exc)
    return APIError(500, "internal server error", type="server_error", code="internal_error")
