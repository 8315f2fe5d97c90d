"""Cloud backend: any OpenAI-compatible chat-completions endpoint, over httpx.

Used only when a caller's routing policy allows it (see `edgegen.router`); constructing a
`Cloud` opens no connection. Results are the same `TextChunk` / `ChatResult` types as the local
backends, with `route="cloud"`.

Timeouts: `connect_timeout` bounds the TCP/TLS connect; `idle_timeout` bounds every wait for the
next bytes (response headers, and each gap inside a stream: a stalled stream fails after it);
`timeout` bounds the whole request (checked between received events, and the read limit for a
non-streaming reply, which arrives all at once).

Faults become `edgegen.CloudError` with a `kind` attribute: "connect_timeout", "unreachable",
"timeout", "idle_timeout", "reset", "http" (with `status`), "protocol" (malformed stream or body).
429 and 5xx answers are retried up to `max_retries` times, waiting for `Retry-After` (capped at
`max_retry_after`) or an exponential backoff, only before the first byte of a reply body; a reset
before any response is retried the same way.

The API key is read from the environment variable named by `api_key_env` at request time. It never
appears in reprs, logs or error messages (error text from the server is scrubbed of it), and it is
never sent in clear text: plain `http://` is accepted only for loopback hosts.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import time
from typing import Any, Iterator, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

from .errors import CloudError, ConstraintError, InvalidRequestError
from .textstream import TextStream
from .sampling import SamplingParams
from .types import ChatMessage, ChatResult, TextChunk, Usage, validate_messages

log = logging.getLogger("edgegen.cloud")

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_SSE_LINE = 1 << 20  # bytes; a longer line is a broken or hostile stream
MAX_ERROR_BODY = 2048


def cloud_error(kind: str, message: str, *, status: Optional[int] = None, retry_after: Optional[float] = None) -> CloudError:
    err = CloudError(message)
    err.kind = kind  # type: ignore[attr-defined]
    err.status = status  # type: ignore[attr-defined]
    err.retry_after = retry_after  # type: ignore[attr-defined]
    return err


class SSEParser:
    """Server-sent events over arbitrary byte splits (WHATWG rules for the fields we use).

    Lines end in CRLF, LF or CR; `data:` lines of one event join with newlines; a blank line ends
    an event; comments (`:`) and unknown fields are ignored.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        """Return the complete events as (event name, data) pairs."""
        self._buf += data
        events: list[tuple[str, str]] = []
        while True:
            cut = _line_end(self._buf)
            if cut is None:
                if len(self._buf) > MAX_SSE_LINE:
                    raise cloud_error("protocol", "cloud stream sent an over-long line")
                return events
            end, nxt = cut
            raw, self._buf = self._buf[:end], self._buf[nxt:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise cloud_error("protocol", "cloud stream is not valid UTF-8") from None
            if line == "":
                if self._data:
                    events.append((self._event or "message", "\n".join(self._data)))
                self._data, self._event = [], ""
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                self._data.append(value)
            elif field == "event":
                self._event = value

    def finish(self) -> list[tuple[str, str]]:
        """End of body: a final event without its blank line still counts."""
        events = self.feed(b"\n\n") if (self._buf or self._data) else []
        return events


def _line_end(buf: bytes) -> Optional[tuple[int, int]]:
    n, r = buf.find(b"\n"), buf.find(b"\r")
    if r == -1 and n == -1:
        return None
    if r != -1 and (n == -1 or r < n):
        if r + 1 == len(buf):
            return None  # a CR at the end might be the first half of CRLF: wait for more
        return (r, r + 2) if buf[r + 1 : r + 2] == b"\n" else (r, r + 1)
    return (n, n + 1)


def _is_loopback(host: str) -> bool:
    if host in ("localhost",) or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parse_retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Cloud:
    """An OpenAI-compatible chat-completions endpoint (e.g. base_url="https://api.example.com/v1")."""

    name = "cloud"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "EDGEGEN_CLOUD_API_KEY",
        timeout: float = 120.0,
        idle_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        max_retry_after: float = 10.0,
        headers: Optional[Mapping[str, str]] = None,
        transport: Any = None,
    ) -> None:
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequestError(f"cloud base_url must be an http(s) URL, got {base_url!r}")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise InvalidRequestError("cloud base_url must use https unless the host is loopback (keys travel in headers)")
        if not isinstance(model, str) or not model:
            raise InvalidRequestError("cloud model must be a non-empty string")
        for name, value in (("timeout", timeout), ("idle_timeout", idle_timeout), ("connect_timeout", connect_timeout)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise InvalidRequestError(f"{name} must be a positive number of seconds")
        from .extras import require

        require("httpx", "cloud", "the cloud route")  # now, not at the first request
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.idle_timeout = float(idle_timeout)
        self.connect_timeout = float(connect_timeout)
        self.max_retries = int(max_retries)
        self.max_retry_after = float(max_retry_after)
        self._headers = dict(headers or {})
        self._transport = transport
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        has_key = bool(os.environ.get(self.api_key_env))
        return f"Cloud(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r}, key_set={has_key})"

    # ---- plumbing -------------------------------------------------------------------------------
    def _http(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(transport=self._transport, follow_redirects=False)
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _key(self) -> str:
        return os.environ.get(self.api_key_env, "")

    def _scrub(self, text: str) -> str:
        key = self._key()
        return text.replace(key, "***") if key else text

    def _request(self, body: dict[str, Any], read_timeout: float) -> Any:
        import httpx

        headers = {"content-type": "application/json", "accept": "text/event-stream" if body.get("stream") else "application/json"}
        headers.update(self._headers)
        key = self._key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        return self._http().build_request(
            "POST", f"{self.base_url}/chat/completions", json=body, headers=headers,
            timeout=httpx.Timeout(connect=self.connect_timeout, read=read_timeout, write=self.idle_timeout, pool=self.connect_timeout),
        )

    def _open(self, body: dict[str, Any], read_timeout: float, cancel: threading.Event) -> Any:
        """Send with bounded retries before the first body byte; return a streaming response, or
        None when `cancel` was set while waiting to retry (cancelling is not a fault)."""
        import httpx

        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                resp = self._http().send(self._request(body, read_timeout), stream=True)
            except httpx.ConnectTimeout:
                raise cloud_error("connect_timeout", f"cloud endpoint {self.base_url} did not accept a connection within {self.connect_timeout} s") from None
            except httpx.ConnectError as exc:
                raise cloud_error("unreachable", f"cloud endpoint {self.base_url} unreachable: {self._scrub(str(exc))}") from None
            except httpx.TimeoutException:
                raise cloud_error("timeout", f"cloud endpoint {self.base_url} sent no response within {read_timeout} s") from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if last:
                    raise cloud_error("reset", f"cloud connection reset before a response: {self._scrub(str(exc))}") from None
                log.info("cloud: connection reset before response; retry %d/%d", attempt + 1, self.max_retries)
                if cancel.wait(min(0.25 * 2**attempt, self.max_retry_after)):
                    return None
                continue
            status = resp.status_code
            if 200 <= status < 300:
                return resp  # redirects are not followed: they could carry the key elsewhere
            retry_after = _parse_retry_after(resp.headers.get("retry-after"))
            detail = self._error_detail(resp)
            if status in RETRY_STATUS and not last:
                wait = retry_after if retry_after is not None else 0.25 * 2**attempt
                if wait <= self.max_retry_after:
                    log.info("cloud: HTTP %d; retry %d/%d in %.2f s", status, attempt + 1, self.max_retries, wait)
                    if cancel.wait(wait):
                        return None
                    continue
            raise cloud_error("http", f"cloud endpoint answered HTTP {status}: {detail}", status=status, retry_after=retry_after)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _error_detail(self, resp: Any) -> str:
        try:
            raw = b""
            for part in resp.iter_bytes():
                raw += part
                if len(raw) > MAX_ERROR_BODY:
                    break
        except Exception:  # the detail is best-effort; the status code is the error
            raw = b""
        finally:
            resp.close()
        return self._scrub(raw[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()) or "(no body)"

    def _body(self, messages: Sequence[Mapping[str, Any]], params: SamplingParams, stream: bool,
              structured: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": validate_messages(messages), "stream": stream}
        body.update(params.to_openai())
        body.update(structured or {})  # response_format / tools: the endpoint enforces them
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    # ---- API ------------------------------------------------------------------------------------
    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        params: Optional[SamplingParams] = None,
        *,
        stream: bool = False,
        cancel: Optional[threading.Event] = None,
        **sampling: Any,
    ) -> Union[ChatResult, TextStream]:
        structured = _structured_passthrough(sampling)
        p = (params or SamplingParams()).with_overrides(**sampling) if sampling else (params or SamplingParams()).validate()
        event = cancel if cancel is not None else threading.Event()
        if stream:
            return TextStream(self._stream(self._body(messages, p, True, structured), event), event)
        return self._complete(self._body(messages, p, False, structured), event)

    def _complete(self, body: dict[str, Any], cancel: threading.Event) -> ChatResult:
        import httpx

        start = time.perf_counter()
        resp = self._open(body, self.timeout, cancel)
        if resp is None:
            return ChatResult(message=ChatMessage("assistant", ""), finish_reason="cancelled", usage=Usage(),
                              model=self.model, route="cloud", backend=self.name,
                              timings={"total_s": time.perf_counter() - start})
        try:
            raw = resp.read()
        except httpx.TimeoutException:
            raise cloud_error("timeout", f"cloud reply not complete within {self.timeout} s") from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise cloud_error("reset", f"cloud connection reset mid-reply: {self._scrub(str(exc))}") from None
        finally:
            resp.close()
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
            if not isinstance(content, str):
                raise TypeError("content is not a string")
            calls = tuple(_tool_call(c) for c in choice["message"].get("tool_calls") or ())
            usage = data.get("usage") or {}
            result_usage = Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise cloud_error("protocol", f"cloud reply is not a chat completion: {self._scrub(str(exc))}") from None
        return ChatResult(
            message=ChatMessage("assistant", content, calls), finish_reason=_finish(choice.get("finish_reason")),
            usage=result_usage, model=str(data.get("model") or self.model), route="cloud", backend=self.name,
            timings={"total_s": time.perf_counter() - start},
        )

    def _stream(self, body: dict[str, Any], cancel: threading.Event) -> Iterator[TextChunk]:
        import httpx

        deadline = time.monotonic() + self.timeout
        resp = self._open(body, self.idle_timeout, cancel)
        if resp is None:
            yield TextChunk("", finish_reason="cancelled", usage=Usage(), route="cloud", backend=self.name)
            return
        parser = SSEParser()
        n_deltas = 0
        finish: Optional[str] = None
        usage: Optional[Usage] = None
        done = False
        try:
            body_iter = resp.iter_bytes()
            while not done:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                try:
                    data = next(body_iter, None)
                except httpx.ReadTimeout:
                    raise cloud_error("idle_timeout", f"cloud stream stalled for more than {self.idle_timeout} s") from None
                except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                    raise cloud_error("reset", f"cloud connection reset mid-stream: {self._scrub(str(exc))}") from None
                events = parser.feed(data) if data is not None else parser.finish()
                for _event, payload in events:
                    if payload.strip() == "[DONE]":
                        done = True
                        break
                    text, f, u = self._parse_event(payload)
                    finish = f or finish
                    usage = u or usage
                    calls = _delta_tool_calls(payload) if '"tool_calls"' in payload else ()
                    if text or calls:
                        n_deltas += 1
                        yield TextChunk(text, route="cloud", backend=self.name, tool_calls=calls)
                        if cancel.is_set():  # several events may sit in one read: stop between them
                            finish, done = "cancelled", True
                            break
                if data is None and not done:
                    if finish is None:
                        raise cloud_error("protocol", "cloud stream ended before a finish_reason or [DONE]")
                    break
                if time.monotonic() > deadline:
                    raise cloud_error("timeout", f"cloud stream exceeded the {self.timeout} s request timeout")
        finally:
            resp.close()
        if usage is None:  # the endpoint did not report usage: one delta per token is the usual shape
            usage = Usage(0, n_deltas)
        yield TextChunk("", finish_reason=_finish(finish), usage=usage, route="cloud", backend=self.name)

    def _parse_event(self, payload: str) -> tuple[str, Optional[str], Optional[Usage]]:
        try:
            data = json.loads(payload)
        except ValueError:
            raise cloud_error("protocol", f"cloud stream sent non-JSON data: {self._scrub(payload[:80])!r}") from None
        if not isinstance(data, dict):
            raise cloud_error("protocol", "cloud stream event is not a JSON object")
        if "error" in data:
            raise cloud_error("http", f"cloud stream reported an error: {self._scrub(json.dumps(data['error'])[:MAX_ERROR_BODY])}")
        usage = None
        if isinstance(data.get("usage"), dict):
            u = data["usage"]
            try:
                usage = Usage(int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0)))
            except (TypeError, ValueError):
                raise cloud_error("protocol", "cloud stream sent malformed usage") from None
        choices = data.get("choices") or []
        if not isinstance(choices, list) or (choices and not isinstance(choices[0], dict)):
            raise cloud_error("protocol", "cloud stream event has malformed choices")
        if not choices:
            return "", None, usage
        delta = choices[0].get("delta") or {}
        text = delta.get("content") if isinstance(delta, dict) else None
        if text is not None and not isinstance(text, str):
            raise cloud_error("protocol", "cloud stream delta content is not a string")
        return text or "", choices[0].get("finish_reason"), usage


def _finish(reason: Any) -> str:
    if reason in ("stop", "length", "cancelled", "tool_calls"):
        return reason
    return "stop"  # content_filter, or unspecified at [DONE]


def _structured_passthrough(sampling: dict[str, Any]) -> dict[str, Any]:
    """Takes the structured-output arguments out of `sampling`, checked as for a local model, in
    the shape the endpoint expects. A grammar or regex has no OpenAI equivalent: it runs locally only."""
    from .structured.local import STRUCTURED_ARGS, pop_structured

    given = {k: sampling[k] for k in STRUCTURED_ARGS if sampling.get(k) is not None}
    pop_structured(sampling, chat=True)  # validates (a bad schema is the caller's 400 here too)
    for k in ("grammar", "regex"):
        if k in given:
            raise ConstraintError(f"{k} runs on local models only; the cloud API takes response_format", param=k)
    return given


def _tool_call(c: Any) -> Any:
    from .structured.tools import ToolCall

    fn = c["function"]
    return ToolCall(str(c.get("id") or ""), str(fn["name"]), str(fn.get("arguments") or ""))


def _delta_tool_calls(payload: str) -> tuple[dict[str, Any], ...]:
    try:
        calls = json.loads(payload)["choices"][0]["delta"].get("tool_calls") or ()
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise cloud_error("protocol", "cloud stream sent malformed tool_calls") from None
    if not isinstance(calls, list) or not all(isinstance(c, dict) and "index" in c for c in calls):
        raise cloud_error("protocol", "cloud stream sent malformed tool_calls")
    return tuple(calls)
