"""GET /metrics: the server's state in Prometheus' text exposition format (version 0.0.4).

Slots and queue from the generation worker; on the native engine also the KV cache by holder:
each running slot's own blocks, blocks shared by several sequences (a common system prompt,
counted once), saved prompt prefixes, and the prompt-token counters of prefix reuse.
"""
from __future__ import annotations

from typing import Any


def _line(out: list[str], name: str, kind: str, help_text: str, samples: list[tuple[str, Any]]) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        out.append(f"{name}{labels} {value}")


def render_metrics(llm: Any, worker: Any, rss_bytes: int) -> str:
    out: list[str] = []
    q = worker.stats()
    _line(out, "edgegen_slots", "gauge", "Generations run at once (decoded together per step on the native engine).",
          [("", q["slots"])])
    _line(out, "edgegen_requests_running", "gauge", "Generations running now.", [("", q["running"])])
    _line(out, "edgegen_requests_waiting", "gauge", "Requests waiting for a slot.", [("", q["waiting"])])
    _line(out, "edgegen_requests_total", "counter", "Finished requests by outcome.",
          [(f'{{outcome="{k}"}}', q[k]) for k in ("completed", "cancelled", "failed", "rejected")])
    be = llm.backend
    if hasattr(be, "kv_usage"):
        kv = be.kv_usage()
        _line(out, "edgegen_kv_slot_bytes", "gauge", "KV cache bytes held by one slot alone.",
              [(f'{{slot="{s}"}}', b) for s, b in sorted(kv["slots"].items())])
        _line(out, "edgegen_kv_shared_bytes", "gauge",
              "KV cache bytes shared by several sequences (common prompt prefixes), counted once.", [("", kv["shared"])])
        _line(out, "edgegen_kv_saved_prefix_bytes", "gauge", "KV cache bytes held only by saved prompt prefixes.",
              [("", kv["saved_prefixes"])])
        _line(out, "edgegen_kv_used_bytes", "gauge", "KV cache bytes in use.", [("", kv["used"])])
        _line(out, "edgegen_kv_capacity_bytes", "gauge", "KV cache bytes reserved (allocated on first use).",
              [("", kv["capacity"])])
        stats = dict(be.stats)
        _line(out, "edgegen_prompt_tokens_evaluated_total", "counter", "Prompt tokens computed.",
              [("", stats.get("prompt_tokens_evaluated", 0))])
        _line(out, "edgegen_prompt_tokens_reused_total", "counter", "Prompt tokens taken from a cached prefix.",
              [("", stats.get("prompt_tokens_reused", 0))])
        _line(out, "edgegen_decode_steps_total", "counter", "Forward passes run by the batch scheduler.",
              [("", stats.get("steps", 0))])
        _line(out, "edgegen_decode_step_rows_total", "counter", "Token rows over all forward passes.",
              [("", stats.get("step_rows", 0))])
    _line(out, "edgegen_resident_memory_bytes", "gauge", "Resident memory of the server process.", [("", rss_bytes)])
    return "\n".join(out) + "\n"
