/* cmd_inference.c: `eft inference CONFIG.yaml [--prompt TEXT | --chat] [--max-new-tokens N]
 * [--temperature T] [--top-k K] [--key value ...]`.
 *
 * Generates with base_model plus lora_model_dir's adapter (when set), rendering the chat with the
 * config's template. --prompt answers one message; otherwise each line of stdin is a message
 * answered on its own, or, with --chat, the next turn of one conversation.
 */
#include "cli/cli.h"

#include "base/err.h"
#include "io/config.h"
#include "train/generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_num(const char *flag, const char *v, double lo, double hi, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || x < lo || x > hi)
        return eft_fail("inference: %s expects a number from %g to %g, found \"%s\".", flag, lo, hi,
                        v);
    *out = x;
    return 0;
}

static int answer(gen_session *s, const chat_msg *m, int n, const gen_opts *o, char **reply) {
    *reply = gen_reply(s, m, n, o);
    if (!*reply) return -1;
    printf("%s\n", *reply);
    fflush(stdout);
    return 0;
}

int cmd_inference(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-')
        return eft_fail("inference: the first argument must be the config file (`eft inference "
                        "CONFIG.yaml --prompt TEXT`).");
    eft_config c;
    if (cfg_load(&c, argv[1])) {
        cfg_free(&c);
        return -1;
    }
    static const char *const keep[] = {
        "prompt=", "chat", "max-new-tokens=", "temperature=", "top-k=", NULL};
    int rc = cfg_apply_overrides(&c, &argc, argv, keep);
    const char *prompt = NULL;
    bool chat = false;
    gen_opts o = {128, 0.0, 0, (uint64_t)c.seed.v};
    for (int i = 2; i < argc && !rc; i++) {
        int missing = 0;
        const char *v;
        double x;
        if ((v = cli_flag_value(argc, argv, &i, "--prompt", &missing)))
            prompt = v;
        else if ((v = cli_flag_value(argc, argv, &i, "--max-new-tokens", &missing)))
            rc = parse_num("--max-new-tokens", v, 1, 1 << 20, &x), o.max_new_tokens = (int)x;
        else if ((v = cli_flag_value(argc, argv, &i, "--temperature", &missing)))
            rc = parse_num("--temperature", v, 0, 100, &o.temperature);
        else if ((v = cli_flag_value(argc, argv, &i, "--top-k", &missing)))
            rc = parse_num("--top-k", v, 0, 1 << 20, &x), o.top_k = (int)x;
        else if (missing)
            rc = -1;
        else if (!strcmp(argv[i], "--chat"))
            chat = true;
        else
            rc = eft_fail("inference: unexpected argument \"%s\".", argv[i]);
    }
    if (!rc) rc = cfg_validate(&c) || cfg_resolve_model_paths(&c);
    gen_session *s = NULL;
    if (!rc) rc = (s = gen_open(&c, (int)c.sequence_len.v + o.max_new_tokens)) ? 0 : -1;
    if (!rc && prompt) {
        chat_msg m = {"user", prompt, -1};
        char *reply;
        rc = answer(s, &m, 1, &o, &reply);
        if (!rc) free(reply);
    } else if (!rc) {
        /* One message per line of stdin; --chat keeps the conversation. */
        chat_msg *hist = NULL;
        char **texts = NULL;
        int n = 0;
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while (!rc && (len = getline(&line, &cap, stdin)) > 0) {
            if (line[len - 1] == '\n') line[--len] = 0;
            if (!len) continue;
            if (!chat) n = 0;
            hist = eft_realloc(hist, (size_t)(n + 2) * sizeof *hist);
            texts = eft_realloc(texts, (size_t)(n + 2) * sizeof *texts);
            texts[n] = eft_strdup(line);
            hist[n] = (chat_msg){"user", texts[n], -1};
            n++;
            char *reply;
            rc = answer(s, hist, n, &o, &reply);
            if (!rc && chat) {
                texts[n] = reply;
                hist[n] = (chat_msg){"assistant", texts[n], -1};
                n++;
            } else if (!rc) {
                free(reply);
                eft_free(texts[0]);
            }
        }
        if (chat)
            for (int i = 0; i < n; i++) free(texts[i]);
        eft_free(hist);
        eft_free(texts);
        free(line);
    }
    gen_close(s);
    cfg_free(&c);
    return rc;
}
