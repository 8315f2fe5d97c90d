"""Routing policy end to end: local never touches the network; fallbacks happen only on the named
conditions; results have the same shape whichever route served them."""
from __future__ import annotations

import dataclasses
import json

import pytest

from edgegen.backends.base import Backend
from edgegen.cloud import Cloud
from edgegen.errors import CloudError, InvalidRequestError, ModelNotFoundError, RouteError, TokenizerError
from edgegen.llm import LLM
from edgegen.router import Router
from edgegen.types import ChatResult

MSG = [{"role": "user", "content": "Say hi"}]
FAST = dict(idle_timeout=0.5, connect_timeout=0.5, timeout=30.0, max_retry_after=1.0)
SAMPLING = dict(max_tokens=4, temperature=0)


def _cloud(url, **kw):
    # sub-second idle timeouts for injected faults; the real server on a busy 2-core box gets slack
    real = any(f"/{mode}/" in url for mode in ("ok", "http503_once"))
    return Cloud(url, "smollm2", **{**FAST, **({"idle_timeout": 30.0} if real else {}), **kw})


# ---- route="local" never opens a connection -----------------------------------------------------

def test_local_route_opens_no_connection_even_with_a_cloud_configured(local_llm, proxy, no_network):
    router = Router(local_llm, _cloud(proxy.url("ok")), route="local")
    out = router.chat(MSG, **SAMPLING)
    assert (out.route, out.fallback_reason) == ("local", None)
    chunks = list(router.chat(MSG, stream=True, **SAMPLING))
    assert all(c.route == "local" for c in chunks)


def test_local_route_errors_stay_local(local_llm, proxy, no_network):
    router = Router(local_llm, _cloud(proxy.url("ok")), route="local")
    with pytest.raises(Exception) as info:
        router.chat([{"role": "user", "content": "word " * 400}], **SAMPLING)  # beyond the 256-token window
    assert type(info.value).__name__ == "ContextOverflowError"


def test_default_route_is_local(local_llm, proxy, no_network, monkeypatch):
    monkeypatch.delenv("EDGEGEN_ROUTE", raising=False)
    assert Router(local_llm, _cloud(proxy.url("ok"))).chat(MSG, **SAMPLING).route == "local"


def test_local_first_that_succeeds_locally_opens_no_connection(local_llm, proxy, no_network):
    out = Router(local_llm, _cloud(proxy.url("ok")), route="local-first").chat(MSG, **SAMPLING)
    assert (out.route, out.fallback_reason) == ("local", None)


@pytest.mark.parametrize(
    "messages,sampling,error",
    [
        (MSG, {"temperature": -1.0}, InvalidRequestError),
        ([{"role": "user", "content": "lone \ud800"}], {}, TokenizerError),
        ([{"content": "no role"}], {}, InvalidRequestError),
    ],
)
def test_local_first_does_not_send_the_callers_own_mistakes_to_the_cloud(local_llm, proxy, no_network, messages, sampling, error):
    router = Router(local_llm, _cloud(proxy.url("ok")), route="local-first")
    with pytest.raises(error):
        router.chat(messages, **{**SAMPLING, **sampling})


def test_cloud_route_without_a_cloud_is_a_route_error(local_llm, no_network):
    with pytest.raises(RouteError):
        Router(local_llm, None, route="local").chat(MSG, route="cloud")


# ---- local-first falls back on the named conditions ---------------------------------------------

def test_local_first_falls_back_when_the_model_is_not_installed(proxy):
    out = Router("no-such-model", _cloud(proxy.url("ok")), route="local-first").chat(MSG, **SAMPLING)
    assert (out.route, out.fallback_reason) == ("cloud", "local_not_installed")
    assert out.text


def test_local_first_without_a_cloud_raises_the_local_error():
    with pytest.raises(ModelNotFoundError):
        Router("no-such-model", None, route="local-first").chat(MSG)


def test_local_first_falls_back_when_the_prompt_exceeds_the_local_context(local_llm, proxy):
    long = [{"role": "user", "content": "word " * 262 + "Say hi"}]
    out = Router(local_llm, _cloud(proxy.url("ok")), route="local-first").chat(long, **SAMPLING)
    assert (out.route, out.fallback_reason) == ("cloud", "local_context_overflow")
    assert out.usage.prompt_tokens > local_llm.n_ctx  # the cloud's own count of the same prompt


def test_local_first_falls_back_when_the_model_is_over_the_memory_budget(model_path, proxy):
    router = Router(model_path, _cloud(proxy.url("ok")), route="local-first", load_options={"memory_budget": "10M"})
    out = router.chat(MSG, **SAMPLING)
    assert (out.route, out.fallback_reason) == ("cloud", "local_memory_budget")


class _FailingBackend(Backend):
    """Tokenizes like the real model but fails as soon as generation starts."""

    name = "failing"

    def __init__(self, real: Backend) -> None:
        self.real = real

    n_ctx = property(lambda self: self.real.n_ctx)
    n_vocab = property(lambda self: self.real.n_vocab)
    bos_id = property(lambda self: self.real.bos_id)
    eos_id = property(lambda self: self.real.eos_id)
    chat_template = property(lambda self: self.real.chat_template)

    def is_eog(self, token_id):
        return self.real.is_eog(token_id)

    def tokenize(self, text, add_special, parse_special):
        return self.real.tokenize(text, add_special, parse_special)

    def token_bytes(self, token_id, special=False):
        return self.real.token_bytes(token_id, special)

    def generate_tokens(self, prompt_ids, params, cancel):
        raise RuntimeError("decode failed: out of memory in the compute graph")
        yield  # pragma: no cover


def test_local_first_falls_back_on_a_local_backend_error(local_llm, proxy):
    broken = LLM(_FailingBackend(local_llm.backend), local_llm.model_path)
    out = Router(broken, _cloud(proxy.url("ok")), route="local-first").chat(MSG, **SAMPLING)
    assert out.route == "cloud" and out.fallback_reason == "local_error:EdgegenError"


# ---- cloud-first falls back to local when the cloud cannot serve --------------------------------

@pytest.mark.parametrize(
    "mode_or_port,stream,reason",
    [("closed", False, "cloud_unreachable"), ("http500", False, "cloud_http_500"), ("reset", True, "cloud_reset"),
     ("stall", True, "cloud_idle_timeout"), ("stall", False, "cloud_timeout"), ("nonjson", True, "cloud_protocol")],
)
def test_cloud_first_falls_back_to_local(local_llm, proxy, closed_port, mode_or_port, stream, reason):
    url = f"http://127.0.0.1:{closed_port}/v1" if mode_or_port == "closed" else proxy.url(mode_or_port)
    # a non-streaming reply arrives all at once, so only the whole-request timeout bounds its wait
    router = Router(local_llm, _cloud(url, max_retries=1, timeout=0.8), route="cloud-first")
    out = router.chat(MSG, stream=stream, **SAMPLING)
    if stream:
        chunks = list(out)
        assert {(c.route, c.fallback_reason) for c in chunks} == {("local", reason)}
        text = "".join(c.text for c in chunks)
    else:
        assert (out.route, out.fallback_reason) == ("local", reason)
        text = out.text
    assert text == local_llm.chat(MSG, **SAMPLING).text


def test_cloud_first_does_not_mask_auth_errors(local_llm, proxy):
    with pytest.raises(CloudError) as info:
        Router(local_llm, _cloud(proxy.url("http401_echo")), route="cloud-first").chat(MSG, **SAMPLING)
    assert info.value.status == 401


def test_no_fallback_after_the_first_chunk_reached_the_caller(local_llm, proxy):
    stream = Router(local_llm, _cloud(proxy.url("stall_mid")), route="cloud-first").chat(MSG, stream=True, **SAMPLING)
    assert next(stream).text == "Hel"
    with pytest.raises(CloudError):
        list(stream)


def test_cloud_first_uses_the_cloud_when_it_works(local_llm, proxy):
    out = Router(local_llm, _cloud(proxy.url("ok")), route="cloud-first").chat(MSG, **SAMPLING)
    assert (out.route, out.fallback_reason, out.backend) == ("cloud", None, "cloud")


# ---- same shape, redaction ----------------------------------------------------------------------

def test_results_have_the_same_shape_whichever_route_served_them(local_llm, proxy):
    router = Router(local_llm, _cloud(proxy.url("ok")))
    local = router.chat(MSG, route="local", **SAMPLING)
    cloud = router.chat(MSG, route="cloud", **SAMPLING)
    assert type(local) is type(cloud) is ChatResult
    assert local.text == cloud.text  # same file, greedy: the same words either way
    assert local.usage == cloud.usage
    for res in (local, cloud):
        assert res.finish_reason in ("stop", "length") and res.usage.total_tokens > 0
    a, b = local.to_openai(), cloud.to_openai()
    assert a.keys() == b.keys() and a["choices"][0].keys() == b["choices"][0].keys()
    assert a["usage"].keys() == b["usage"].keys()
    ls = list(router.chat(MSG, route="local", stream=True, **SAMPLING))
    cs = list(router.chat(MSG, route="cloud", stream=True, **SAMPLING))
    assert {type(c) for c in ls + cs} == {type(ls[0])}
    for chunks in (ls, cs):
        assert chunks[-1].finish_reason and chunks[-1].usage is not None
        assert all(c.finish_reason is None for c in chunks[:-1])
    assert [f.name for f in dataclasses.fields(ls[-1])] == [f.name for f in dataclasses.fields(cs[-1])]


def test_redaction_hook_runs_before_anything_leaves(local_llm, proxy):
    def redact(messages):
        return [{**m, "content": m["content"].replace("4111-1111", "[card]")} for m in messages]

    msgs = [{"role": "user", "content": "My card is 4111-1111. Say hi"}]
    Router(local_llm, _cloud(proxy.url("ok")), route="cloud", redact=redact).chat(msgs, **SAMPLING)
    sent = json.loads(proxy.requests[-1]["body"])
    assert "4111-1111" not in json.dumps(sent) and "[card]" in sent["messages"][0]["content"]
    assert msgs[0]["content"] == "My card is 4111-1111. Say hi"  # the caller's list is untouched


def test_a_failing_redaction_hook_sends_nothing(local_llm, proxy):
    def broken(messages):
        raise KeyError("oops")

    before = len(proxy.requests)
    with pytest.raises(RouteError, match="nothing was sent"):
        Router(local_llm, _cloud(proxy.url("ok")), route="cloud", redact=broken).chat(MSG)
    assert len(proxy.requests) == before


# ---- CLI flags ----------------------------------------------------------------------------------

def test_cli_run_routes_to_the_cloud_only_when_asked(proxy, capsys, monkeypatch):
    from edgegen.cli.main import main

    monkeypatch.delenv("EDGEGEN_ROUTE", raising=False)
    before = len(proxy.requests)
    argv = ["run", "Say hi", "-n", "4", "--temperature", "0", "--cloud-url", proxy.url("ok"), "--cloud-model", "smollm2",
            "--cloud-idle-timeout", "30"]
    assert main([*argv, "--route", "cloud"]) == 0
    out = capsys.readouterr().out
    assert len(proxy.requests) == before + 1
    assert out == _cloud(proxy.url("ok")).chat(MSG, **SAMPLING).text + "\n"
    # the same flags without --route: local by default, nothing sent
    before = len(proxy.requests)
    assert main([*argv, "--backend", "llama.cpp", "--threads", "1", "--ctx", "256"]) == 0
    assert len(proxy.requests) == before
