/* generate.c: greedy or sampled generation (see generate.h). */
#include "train/generate.h"

#include "base/err.h"
#include "base/fs.h"
#include "base/rng.h"
#include "model/g4_desc.h"
#include "model/g4_model.h"
#include "model/g4_weights.h"
#include "peft/lora.h"
#include "peft/peft_io.h"
#include "text/chat.h"
#include "text/tokenizer.h"
#include "train/run_config.h"
#include "train/run_weights.h"

#include <math.h>
#include <string.h>

struct gen_session {
    g4_desc d;
    g4_weights w;
    lora_adapter adapter;
    g4_model model;
    tok_tokenizer *tok;
    chat_template_kind tmpl;
    chat_opts opts; /* the template variables (enable_thinking) */
    int32_t stop[8];
    int n_stop;
    int max_tokens;
    int32_t *ids, *pos, *target; /* [max_tokens] */
    float *logits;               /* [V] */
};

static int pick_template(gen_session *s, const eft_config *c) {
    if (c->chat_template.v && strcmp(c->chat_template.v, "tokenizer_default"))
        return chat_template_by_name(c->chat_template.v, &s->tmpl);
    return chat_template_from_checkpoint(c->tokenizer_path, &s->tmpl);
}

static void stop_tokens(gen_session *s, const eft_config *c) {
    int32_t eos = tok_eos_id(s->tok);
    if (eos >= 0) s->stop[s->n_stop++] = eos;
    for (int i = 0; i < c->eot_tokens.n && s->n_stop < 8; i++) {
        int32_t id = tok_id(s->tok, c->eot_tokens.v[i]);
        if (id >= 0) s->stop[s->n_stop++] = id;
    }
}

gen_session *gen_open(const eft_config *c, int max_tokens) {
    gen_session *s = eft_calloc(1, sizeof *s);
    if (g4_desc_load(&s->d, c->model_config_path)) {
        eft_free(s);
        return NULL;
    }
    int rc = trn_check_buildable(c, &s->d.plan);
    if (!rc) rc = (s->tok = tok_load(c->tokenizer_path)) ? 0 : -1;
    if (!rc) rc = pick_template(s, c);
    s->opts = chat_opts_default();
    if (!rc)
        rc = cfg_map_bool(&c->chat_template_kwargs, "enable_thinking", &s->opts.enable_thinking,
                          "chat_template_kwargs");
    if (!rc) rc = trn_weights_load(&s->w, c, &s->d.plan, &s->d.ts, false);
    if (!rc && c->lora_model_dir.v && *c->lora_model_dir.v) {
        peft_config pc;
        rc = peft_load(c->lora_model_dir.v, &s->w, false, &s->adapter, &pc);
        if (!rc) peft_config_free(&pc);
    }
    if (rc) {
        gen_close(s);
        return NULL;
    }
    stop_tokens(s, c);
    s->max_tokens = max_tokens;
    s->ids = eft_malloc((size_t)max_tokens * sizeof(int32_t));
    s->pos = eft_malloc((size_t)max_tokens * sizeof(int32_t));
    s->target = eft_malloc((size_t)max_tokens * sizeof(int32_t));
    s->logits = eft_malloc((size_t)s->d.plan.V * sizeof(float));
    for (int t = 0; t < max_tokens; t++) s->pos[t] = t, s->target[t] = -100;
    g4_model_init(&s->model, &s->d.plan, &s->w, max_tokens, false);
    return s;
}

void gen_close(gen_session *s) {
    if (!s) return;
    if (s->ids) g4_model_free(&s->model);
    lora_detach(&s->adapter);
    if (s->w.params) g4_weights_free(&s->w);
    g4_desc_free(&s->d);
    tok_free(s->tok);
    eft_free(s->ids), eft_free(s->pos), eft_free(s->target), eft_free(s->logits);
    eft_free(s);
}

static int32_t pick(const gen_session *s, const gen_opts *o, eft_rng *r) {
    int64_t V = s->d.plan.V, best = 0;
    for (int64_t v = 1; v < V; v++)
        if (s->logits[v] > s->logits[best]) best = v;
    if (o->temperature <= 0) return (int32_t)best;
    /* Sampling: softmax(logits / T) over the top_k largest (all when 0). */
    double threshold = -INFINITY;
    if (o->top_k > 0 && o->top_k < V) {
        /* The k-th largest logit by repeated selection: k is small. */
        double prev = INFINITY;
        for (int i = 0; i < o->top_k; i++) {
            double m = -INFINITY;
            for (int64_t v = 0; v < V; v++)
                if (s->logits[v] < prev && s->logits[v] > m) m = s->logits[v];
            prev = m;
        }
        threshold = prev;
    }
    double z = 0, mx = s->logits[best];
    for (int64_t v = 0; v < V; v++)
        if (s->logits[v] >= threshold) z += exp((s->logits[v] - mx) / o->temperature);
    double u = eft_rng_uniform(r) * z, acc = 0;
    for (int64_t v = 0; v < V; v++) {
        if (s->logits[v] < threshold) continue;
        acc += exp((s->logits[v] - mx) / o->temperature);
        if (acc >= u) return (int32_t)v;
    }
    return (int32_t)best;
}

char *gen_reply(gen_session *s, const chat_msg *m, int n_msgs, const gen_opts *o) {
    char *prompt = chat_render_opts(s->tmpl, m, n_msgs, true, &s->opts);
    if (!prompt) return NULL;
    tok_ids ids = {0};
    /* The template writes <bos> itself. */
    int rc = tok_encode(s->tok, prompt, strlen(prompt), false, &ids);
    eft_free(prompt);
    if (rc) return NULL;
    int n = (int)ids.n, start = n;
    if (n >= s->max_tokens) {
        tok_ids_free(&ids);
        eft_fail("the prompt has %d tokens, more than the %d this session holds", n, s->max_tokens);
        return NULL;
    }
    memcpy(s->ids, ids.ids, (size_t)n * sizeof(int32_t));
    tok_ids_free(&ids);
    eft_rng r;
    eft_rng_seed(&r, o->seed, 7);
    int max_new = o->max_new_tokens > 0 ? o->max_new_tokens : 128;
    for (int i = 0; i < max_new && n < s->max_tokens; i++) {
        g4_batch b = {n, s->ids, s->pos, s->target, NULL, 1};
        int64_t count;
        g4_forward(&s->model, &b, &count);
        g4_token_logits(&s->model, n - 1, s->logits);
        int32_t next = pick(s, o, &r);
        bool stop = false;
        for (int k = 0; k < s->n_stop; k++) stop |= next == s->stop[k];
        if (stop) break;
        s->ids[n++] = next;
    }
    return tok_decode(s->tok, s->ids + start, (size_t)(n - start), true);
}
