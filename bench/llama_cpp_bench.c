/* llama_cpp_bench.c: llama.cpp's side of bench/llm.py, on llama.cpp's C API with its defaults.
 *
 * Built on first use by bench/llamacpp_harness.py against the llama.h / libllama.so that the
 * llama-cpp-python wheel ships, so both benchmarks run the very library edgegen's llama.cpp
 * backend uses. No Python runs in this process.
 *
 *   llama_cpp_bench MODEL [--threads N] [--ctx N] [--prompt-file F | --prompt-tokens N]
 *                   [--ttft-tokens K] [--decode N] [--runs R] [--warmup W] [--parallel S] [--verbose]
 *                   [--lora ADAPTER.gguf [--lora-scale S]]
 *
 * --lora: a GGUF LoRA adapter applied to every run (llama_adapter_lora_init + llama_set_adapters_lora,
 * as llama-server applies one), for bench/lora.py; adapter_ms is its load time.
 *
 * Parameters: llama_model_default_params() and llama_context_default_params(), except
 * n_threads = n_threads_batch = --threads and n_ctx = --ctx. So weight repacking is on
 * (use_extra_bufts), flash attention is "auto", n_batch / n_ubatch are the defaults (capped at
 * n_ctx by llama.cpp), the KV cache is f16, one sequence.
 *
 * Per run (after W warm-up runs, medians over R timed runs):
 *   ttft     memory cleared; the first K prompt tokens in one llama_decode, then argmax of the
 *            last position's logits: the chat-turn latency.
 *   decode   then N greedy steps: one llama_decode of the previous token, argmax in C.
 *   prefill  memory cleared; the whole prompt in llama_decode calls of n_batch tokens (logits of
 *            the last position only), ending when the last call returns.
 *   parallel (--parallel S > 1) memory cleared; S sequences each get the first K prompt tokens
 *            (shifted ids, so they differ) in one llama_decode, then N steps of one
 *            llama_decode holding S tokens (one per sequence, logits for each, argmax in C):
 *            aggregate tok/s = S * N / time. The context has n_seq_max = S (n_ctx shared).
 * Not timed: tokenization (ids come in), context creation (reported as ctx_ms), memory clears.
 *
 * Output: one JSON object on stdout. kv_bytes is the sum of the "KV buffer size" lines llama.cpp
 * logs when it allocates the cache for n_ctx (printed in MiB with 2 decimals, so +-5 KiB per
 * buffer): the allocated size. llama_state_seq_get_size would give the serialised state of the
 * cells in use, which grows with the tokens, so it is not used. rss_mb is VmHWM.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "llama.h"

/* ---- log capture ------------------------------------------------------------------------------ */

#define MAX_CAPTURED 64

typedef struct {
    bool verbose;
    double kv_mib;       /* sum of "KV buffer size = X MiB" */
    int n_kv_buffers;
    double model_mib;    /* sum of "model buffer size = X MiB" (repacked weights appear as CPU_REPACK) */
    double repack_mib;
    double compute_mib;
    char *captured[MAX_CAPTURED];
    int n_captured;
    char line[1024];     /* llama.cpp may log one line in several calls (GGML_LOG_LEVEL_CONT) */
    size_t line_len;
} log_state;

static void capture(log_state *st, const char *s) {
    const char *eq = strstr(s, "= ");
    double mib = eq ? strtod(eq + 2, NULL) : 0.0;
    bool keep = true;
    if (strstr(s, "KV buffer size")) {
        st->kv_mib += mib;
        st->n_kv_buffers++;
    } else if (strstr(s, "model buffer size")) {
        st->model_mib += mib;
        if (strstr(s, "REPACK")) st->repack_mib += mib;
    } else if (strstr(s, "compute buffer size")) {
        st->compute_mib += mib;
    } else if (!strstr(s, "Flash Attention") && !strstr(s, "KV cache") && !strstr(s, "n_batch") &&
               !strstr(s, "n_ubatch") && !strstr(s, "flash_attn") && !strstr(s, "n_ctx ") &&
               !(strstr(s, "llama_kv_cache") && strstr(s, "size ="))) {
        keep = false;
    }
    if (keep && st->n_captured < MAX_CAPTURED) st->captured[st->n_captured++] = strdup(s);
}

static void on_log(enum ggml_log_level level, const char *text, void *user) {
    log_state *st = (log_state *)user;
    if (st->verbose) fputs(text, stderr);
    (void)level;
    for (const char *p = text; *p; ++p) {
        if (*p == '\n') {
            st->line[st->line_len] = '\0';
            capture(st, st->line);
            st->line_len = 0;
        } else if (st->line_len + 1 < sizeof st->line) {
            st->line[st->line_len++] = *p;
        }
    }
}

/* ---- helpers ---------------------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void) {
    /* VmHWM: this process's own peak resident set */
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char buf[256];
        while (fgets(buf, sizeof buf, f)) {
            if (strncmp(buf, "VmHWM:", 6) == 0) {
                fclose(f);
                return strtod(buf + 6, NULL) / 1024.0;
            }
        }
        fclose(f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static llama_token argmax(const float *logits, int32_t n_vocab) {
    llama_token best = 0;
    for (int32_t i = 1; i < n_vocab; ++i)
        if (logits[i] > logits[best]) best = i;
    return best;
}

static void die(const char *msg) {
    fprintf(stderr, "llama_cpp_bench: %s\n", msg);
    exit(1);
}

/* Reads token ids: integers separated by anything else (a JSON list works). */
static llama_token *read_ids(const char *path, int32_t *n_out) {
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open the prompt file");
    size_t cap = 1024, n = 0;
    llama_token *ids = malloc(cap * sizeof *ids);
    int c;
    long cur = -1;
    while ((c = fgetc(f)) != EOF) {
        if (c >= '0' && c <= '9') {
            cur = (cur < 0 ? 0 : cur * 10) + (c - '0');
            if (cur > INT32_MAX) die("token id out of range");
        } else if (cur >= 0) {
            if (n == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
            ids[n++] = (llama_token)cur;
            cur = -1;
        }
    }
    if (cur >= 0) {
        if (n == cap) ids = realloc(ids, (cap + 1) * sizeof *ids);
        ids[n++] = (llama_token)cur;
    }
    fclose(f);
    *n_out = (int32_t)n;
    return ids;
}

/* Decodes tokens[0..n) into the (cleared or continuing) sequence 0 in calls of at most n_batch
 * tokens; only the last position's logits are computed. Returns llama_decode's status. */
static int32_t decode_all(struct llama_context *ctx, llama_token *tokens, int32_t n, int32_t n_batch) {
    for (int32_t i = 0; i < n; i += n_batch) {
        int32_t m = n - i < n_batch ? n - i : n_batch;
        int32_t rc = llama_decode(ctx, llama_batch_get_one(tokens + i, m));
        if (rc != 0) return rc;
    }
    return 0;
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

/* ---- main ------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    const char *model_path = NULL, *prompt_file = NULL, *lora_path = NULL;
    float lora_scale = 1.0f;
    int32_t n_threads = 2, n_ctx = 8192, n_prompt_synth = 512, ttft_tokens = 16, n_decode = 128;
    int runs = 1, warmup = 1, n_par = 1;
    bool verbose = false;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verbose")) { verbose = true; continue; }
        if (a[0] != '-') { model_path = a; continue; }
        if (!v) die("option without a value");
        ++i;
        if (!strcmp(a, "--threads")) n_threads = atoi(v);
        else if (!strcmp(a, "--ctx")) n_ctx = atoi(v);
        else if (!strcmp(a, "--prompt-file")) prompt_file = v;
        else if (!strcmp(a, "--prompt-tokens")) n_prompt_synth = atoi(v);
        else if (!strcmp(a, "--ttft-tokens")) ttft_tokens = atoi(v);
        else if (!strcmp(a, "--decode")) n_decode = atoi(v);
        else if (!strcmp(a, "--runs")) runs = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--parallel")) n_par = atoi(v);
        else if (!strcmp(a, "--lora")) lora_path = v;
        else if (!strcmp(a, "--lora-scale")) lora_scale = (float)atof(v);
        else die("unknown option");
    }
    if (!model_path) die("usage: llama_cpp_bench MODEL [--threads N] [--ctx N] [--prompt-file F | --prompt-tokens N] "
                         "[--ttft-tokens K] [--decode N] [--runs R] [--warmup W] [--verbose]");
    if (n_threads < 1 || n_ctx < 1 || runs < 1 || warmup < 0 || n_decode < 0 || ttft_tokens < 1 || n_par < 1 || n_par > 64)
        die("bad numeric option");

    static log_state st;
    st.verbose = verbose;
    llama_log_set(on_log, &st);
    llama_backend_init();

    /* ---- load: the model (weights mmapped, repacked into CPU_REPACK buffers where llama.cpp
     * does that), then the context (KV cache allocated and cleared for n_ctx) ---- */
    struct llama_model_params mp = llama_model_default_params();
    double t0 = now_s();
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    double load_s = now_s() - t0;
    if (!model) die("llama_model_load_from_file failed");

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_threads = n_threads;
    cp.n_threads_batch = n_threads;
    cp.n_seq_max = (uint32_t)n_par;
    t0 = now_s();
    struct llama_context *ctx = llama_init_from_model(model, cp);
    double ctx_s = now_s() - t0;
    if (!ctx) die("llama_init_from_model failed");
    double adapter_s = 0.0;
    if (lora_path) {
        t0 = now_s();
        struct llama_adapter_lora *ad = llama_adapter_lora_init(model, lora_path);
        if (!ad) die("llama_adapter_lora_init failed");
        if (llama_set_adapters_lora(ctx, &ad, 1, &lora_scale) != 0) die("llama_set_adapters_lora failed");
        adapter_s = now_s() - t0;
    }

    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    const int32_t n_batch = (int32_t)llama_n_batch(ctx);
    llama_memory_t mem = llama_get_memory(ctx);

    int32_t n_prompt = 0;
    llama_token *prompt;
    if (prompt_file) {
        prompt = read_ids(prompt_file, &n_prompt);
    } else {
        /* a deterministic spread of ordinary ids; the content does not change the work */
        n_prompt = n_prompt_synth;
        prompt = malloc((size_t)(n_prompt > 0 ? n_prompt : 1) * sizeof *prompt);
        for (int32_t i = 0; i < n_prompt; ++i) prompt[i] = (llama_token)(1000 + (i * 7919) % (n_vocab / 2));
    }
    for (int32_t i = 0; i < n_prompt; ++i)
        if (prompt[i] < 0 || prompt[i] >= n_vocab) die("prompt token id outside the vocabulary");
    if (n_prompt < ttft_tokens) die("the prompt is shorter than --ttft-tokens");
    if (n_prompt > n_ctx || ttft_tokens + n_decode > n_ctx) die("the work does not fit in --ctx");

    double *ttft = calloc((size_t)runs, sizeof(double));
    double *dec = calloc((size_t)runs, sizeof(double));
    double *pre = calloc((size_t)runs, sizeof(double));
    llama_token last = 0;
    for (int r = -warmup; r < runs; ++r) {
        llama_memory_clear(mem, true);
        double t = now_s();
        if (decode_all(ctx, prompt, ttft_tokens, n_batch) != 0) die("llama_decode failed (ttft)");
        llama_token tok = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
        double ttft_s = now_s() - t;

        t = now_s();
        for (int32_t i = 0; i < n_decode; ++i) {
            if (llama_decode(ctx, llama_batch_get_one(&tok, 1)) != 0) die("llama_decode failed (decode)");
            tok = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
        }
        double dec_s = now_s() - t;
        last = tok;

        llama_memory_clear(mem, true);
        t = now_s();
        if (decode_all(ctx, prompt, n_prompt, n_batch) != 0) die("llama_decode failed (prefill)");
        double pre_s = now_s() - t;
        if (r >= 0) {
            ttft[r] = ttft_s;
            dec[r] = n_decode > 0 ? n_decode / dec_s : 0.0;
            pre[r] = n_prompt > 0 ? n_prompt / pre_s : 0.0;
        }
    }
    double *par = calloc((size_t)runs, sizeof(double));
    if (n_par > 1) {
        struct llama_batch b = llama_batch_init(n_par * ttft_tokens, 0, 1);
        llama_token *toks = malloc((size_t)n_par * sizeof *toks);
        for (int r = -warmup; r < runs; ++r) {
            llama_memory_clear(mem, true);
            b.n_tokens = 0;
            for (int s = 0; s < n_par; ++s)
                for (int32_t i = 0; i < ttft_tokens; ++i) {
                    const int k = b.n_tokens++;
                    b.token[k] = (prompt[i] + 97 * s) % n_vocab;
                    b.pos[k] = i;
                    b.n_seq_id[k] = 1;
                    b.seq_id[k][0] = s;
                    b.logits[k] = i == ttft_tokens - 1;
                }
            if (llama_decode(ctx, b) != 0) die("llama_decode failed (parallel prompts)");
            for (int s = 0; s < n_par; ++s) toks[s] = argmax(llama_get_logits_ith(ctx, (s + 1) * ttft_tokens - 1), n_vocab);
            double t = now_s();
            for (int32_t i = 0; i < n_decode; ++i) {
                b.n_tokens = n_par;
                for (int s = 0; s < n_par; ++s) {
                    b.token[s] = toks[s];
                    b.pos[s] = ttft_tokens + i;
                    b.n_seq_id[s] = 1;
                    b.seq_id[s][0] = s;
                    b.logits[s] = 1;
                }
                if (llama_decode(ctx, b) != 0) die("llama_decode failed (parallel decode)");
                for (int s = 0; s < n_par; ++s) toks[s] = argmax(llama_get_logits_ith(ctx, s), n_vocab);
            }
            if (r >= 0) par[r] = n_decode > 0 ? (double)n_par * n_decode / (now_s() - t) : 0.0;
        }
        llama_batch_free(b);
        free(toks);
    }
    const double rss = peak_rss_mb();

    printf("{\"engine\": \"llama.cpp\", \"api\": \"C\"");
    printf(", \"decode\": %.3f, \"prefill\": %.3f, \"ttft_ms\": %.3f", median(dec, runs), median(pre, runs),
           1000.0 * median(ttft, runs));
    printf(", \"parallel\": %d, \"parallel_decode\": %.3f", n_par, n_par > 1 ? median(par, runs) : 0.0);
    printf(", \"load_ms\": %.3f, \"ctx_ms\": %.3f, \"rss_mb\": %.1f", 1000.0 * load_s, 1000.0 * ctx_s, rss);
    printf(", \"adapter_ms\": %.3f", 1000.0 * adapter_s);
    printf(", \"kv_bytes\": %.0f, \"kv_source\": \"log: KV buffer size (%d buffers)\"", st.kv_mib * 1048576.0,
           st.n_kv_buffers);
    printf(", \"model_buffer_bytes\": %.0f, \"repack_bytes\": %.0f, \"compute_buffer_bytes\": %.0f",
           st.model_mib * 1048576.0, st.repack_mib * 1048576.0, st.compute_mib * 1048576.0);
    printf(", \"n_ctx\": %u, \"n_batch\": %u, \"n_ubatch\": %u, \"threads\": %d", llama_n_ctx(ctx), llama_n_batch(ctx),
           llama_n_ubatch(ctx), n_threads);
    printf(", \"prompt_tokens\": %d, \"ttft_tokens\": %d, \"decode_tokens\": %d, \"runs\": %d, \"warmup\": %d",
           n_prompt, ttft_tokens, n_decode, runs, warmup);
    printf(", \"last_token\": %d, \"system_info\": ", last);
    json_str(llama_print_system_info());
    printf(", \"log\": [");
    for (int i = 0; i < st.n_captured; ++i) {
        if (i) printf(", ");
        json_str(st.captured[i]);
    }
    printf("]}\n");

    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    free(prompt);
    free(ttft);
    free(dec);
    free(pre);
    free(par);
    return 0;
}
