"""Several sequences per decode step (Model.step, edgegen.scheduler): a sequence's tokens are the
same alone or beside others, cancellations and context limits touch only their own sequence, and
every KV block comes back."""
from __future__ import annotations

import random
import threading

import pytest

import edgegen
from edgegen import _native
from edgegen.sampling import SamplingParams

from .conftest import GREEDY_PROMPTS, smollm2_path

N_TOKENS = 8
SYSTEM = ("You are the voice of a museum guide robot. Answer in one or two short sentences, politely, "
          "and say so when you do not know. Rooms: dinosaurs on the ground floor, space on the first.")
QUESTIONS = ["Where are the dinosaurs?", "Is there a café?", "What is on the first floor?", "Can I take photos?",
             "When do you close?", "Hello!", "Who built you?", "Where are the toilets?"]


@pytest.fixture(scope="module")
def llm8():
    llm = edgegen.load(smollm2_path(), backend="native", n_ctx=256, n_threads=2, max_parallel=8)
    yield llm
    llm.backend.close()


@pytest.fixture(scope="module")
def alone():
    """The same model serving one request at a time: the reference for every batch."""
    llm = edgegen.load(smollm2_path(), backend="native", n_ctx=256, n_threads=2)
    yield llm
    llm.backend.close()


def _all_blocks_free(llm) -> bool:
    be = llm.backend
    be.scheduler.run_exclusive(lambda _slot: be.scheduler.drop_saved_prefixes())
    cache = be.kv_cache
    groups = len(cache.layout["groups"])
    return all(cache.free_blocks(g) == cache.layout["groups"][g]["n_blocks"] for g in range(groups)) \
        and not be.scheduler.active_slots()


def _concurrently(fns):
    results = [None] * len(fns)
    errors = []

    def run(i):
        try:
            results[i] = fns[i]()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def test_step_of_one_sequence_is_decode() -> None:
    """Model.step over one sequence is Model.decode: the single-sequence arithmetic is unchanged."""
    model = _native.Model(smollm2_path(), 2)
    prompt = list(range(300, 340))
    n_vocab = model.spec["n_vocab"]
    ca, cb = model.new_cache(128), model.new_cache(128)
    sa, sb = _native.Sampler(n_vocab), _native.Sampler(n_vocab)
    a = [model.decode(ca, 0, prompt, sa)]
    b = model.step(cb, [(0, prompt, sb, True)])
    for _ in range(6):
        a.append(model.decode(ca, 0, [a[-1]], sa))
        b += model.step(cb, [(0, [b[-1]], sb, True)])
    assert a == b
    with pytest.raises(ValueError, match="twice"):
        model.step(cb, [(0, [1], None, False), (0, [2], None, False)])
    with pytest.raises(ValueError, match="at most 64"):
        model.step(cb, [(0, list(range(65)), None, False)])


@pytest.mark.slow
def test_eight_concurrent_greedy_requests_equal_each_alone(llm8, alone) -> None:
    prompts = GREEDY_PROMPTS[:8]
    ref = [alone.generate(p, max_tokens=N_TOKENS, temperature=0.0).text for p in prompts]
    got = _concurrently([lambda p=p: llm8.generate(p, max_tokens=N_TOKENS, temperature=0.0).text for p in prompts])
    assert got == ref
    # seeded sampling too: the sampler is the sequence's own
    seeded = dict(max_tokens=N_TOKENS, temperature=0.9, top_k=40, seed=7)
    ref = [alone.generate(p, **seeded).text for p in prompts[:4]]
    assert _concurrently([lambda p=p: llm8.generate(p, **seeded).text for p in prompts[:4]]) == ref
    assert llm8.backend.stats["steps"] > 0 and _all_blocks_free(llm8)


@pytest.mark.slow
def test_shared_system_prompt_is_stored_once_and_answers_are_unchanged(llm8, alone) -> None:
    chats = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in QUESTIONS]
    ref = [alone.chat(c, max_tokens=N_TOKENS, temperature=0.0).text for c in chats]
    be = llm8.backend
    be.scheduler.run_exclusive(lambda _slot: be.scheduler.drop_saved_prefixes())
    reused = be.stats["prompt_tokens_reused"]
    evaluated = be.stats["prompt_tokens_evaluated"]
    peak = [0]
    cache = be.kv_cache
    total = cache.n_blocks

    def watch():  # blocks in use while the eight run
        peak[0] = max(peak[0], total - cache.free_blocks(0))

    be.scheduler._on_step = lambda _n: watch()
    try:
        got = _concurrently([lambda c=c: llm8.chat(c, max_tokens=N_TOKENS, temperature=0.0).text for c in chats])
    finally:
        be.scheduler._on_step = None
    assert got == ref
    system_tokens = len(llm8.tokenize(SYSTEM, add_special=False))
    prompt_tokens = sum(len(llm8.prepare_chat(c).ids) for c in chats)
    # the system prompt was evaluated once, the other seven forked it
    assert be.stats["prompt_tokens_reused"] - reused >= 7 * (system_tokens - 32)
    assert be.stats["prompt_tokens_evaluated"] - evaluated <= prompt_tokens - 7 * (system_tokens - 32)
    one = -(-(len(llm8.prepare_chat(chats[0]).ids) + N_TOKENS) // cache.block_tokens)
    assert peak[0] < 8 * one  # fewer blocks than eight separate copies
    assert _all_blocks_free(llm8)


@pytest.mark.slow
def test_random_cancellations_and_late_joins_leave_the_others_intact(llm8, alone) -> None:
    prompts = GREEDY_PROMPTS[8:16]
    n = 12
    ref = [alone.generate(p, max_tokens=n, temperature=0.0).text for p in prompts]
    rng = random.Random(19)
    cancel_at = {i: rng.randint(1, n - 4) for i in rng.sample(range(8), 3)}
    # one thread drives all eight streams: four start now, the others join mid-decode
    streams = {i: llm8.stream(prompts[i], max_tokens=n, temperature=0.0) for i in range(4)}
    texts = {i: "" for i in range(8)}
    counts = {i: 0 for i in range(8)}
    finished = {}
    rounds = 0
    while len(finished) < 8:
        rounds += 1
        for i in range(8):
            if i in finished:
                continue
            if i not in streams:
                if rounds >= i:  # joins while the first ones are mid-decode
                    streams[i] = llm8.stream(prompts[i], max_tokens=n, temperature=0.0)
                continue
            chunk = next(streams[i])
            texts[i] += chunk.text
            counts[i] += len(chunk.token_ids)
            if i in cancel_at and counts[i] >= cancel_at[i]:
                streams[i].close()
                finished[i] = "cancelled"
            elif chunk.finish_reason:
                finished[i] = chunk.finish_reason
    for i in range(8):
        if i in cancel_at:
            assert ref[i].startswith(texts[i])
        else:
            assert texts[i] == ref[i], i
    assert _all_blocks_free(llm8)


def test_one_sequence_at_its_context_limit_ends_while_the_others_continue(alone) -> None:
    llm = edgegen.load(smollm2_path(), backend="native", n_ctx=64, n_threads=2, max_parallel=3)
    try:
        short = ["The sun is a", "Le chat est"]
        ref = [alone.generate(p, max_tokens=24, temperature=0.0).text for p in short]
        long_prompt = " ".join(["one two three four five six seven eight nine ten"] * 5)
        n_long = len(llm.tokenize(long_prompt))
        assert 40 < n_long < 60
        res = _concurrently([lambda: llm.generate(long_prompt, temperature=0.0)] +
                            [lambda p=p: llm.generate(p, max_tokens=24, temperature=0.0) for p in short])
        assert res[0].finish_reason == "length" and res[0].usage.completion_tokens == 64 - n_long
        assert [r.text for r in res[1:]] == ref
        assert _all_blocks_free(llm)
    finally:
        llm.backend.close()


def test_max_parallel_is_checked_and_counted_by_the_fit_check() -> None:
    from edgegen import fit

    with pytest.raises(edgegen.InvalidRequestError, match="max_parallel"):
        edgegen.load(smollm2_path(), backend="native", n_ctx=256, max_parallel=0)
    one = fit.estimate_for_gguf(smollm2_path(), 1024, "f16").kv_bytes
    four = fit.estimate_for_gguf(smollm2_path(), 1024, "f16", n_parallel=4).kv_bytes
    assert four >= 4 * one
    with pytest.raises(edgegen.MemoryBudgetError):
        edgegen.load(smollm2_path(), backend="native", n_ctx=8192, max_parallel=64, memory_budget="1G")


def test_exiting_with_a_stream_open_is_clean(tmp_path) -> None:
    """The scheduler thread is stopped before the model is torn down (it used to abort)."""
    import subprocess
    import sys

    script = tmp_path / "exit.py"
    script.write_text(
        "import edgegen\n"
        f"llm = edgegen.load({smollm2_path()!r}, backend='native', n_ctx=256, n_threads=2, max_parallel=2)\n"
        "stream = llm.stream('Once upon a time', max_tokens=200, temperature=0.0)\n"
        "print(next(stream).text is not None)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_hold_pauses_every_step_and_changes_no_token(alone) -> None:
    """hold(): no step starts while held (nested holds too); released, the generation goes on and
    its tokens are those of an unheld run."""
    prompt = "Tell me about the museum's dinosaurs."
    expected = alone.chat([{"role": "user", "content": prompt}], max_tokens=N_TOKENS, temperature=0.0).text
    sched = alone.backend.scheduler
    got: list[str] = []
    with sched.hold():
        with sched.hold():
            steps = sched.stats["steps"]
            t = threading.Thread(target=lambda: got.append(alone.chat([{"role": "user", "content": prompt}],
                                                                       max_tokens=N_TOKENS, temperature=0.0).text))
            t.start()
            t.join(0.3)
            assert t.is_alive() and sched.stats["steps"] == steps
        t.join(0.2)
        assert t.is_alive() and sched.stats["steps"] == steps  # the outer hold still holds
    t.join(60)
    assert got == [expected] and sched.stats["steps"] > steps
