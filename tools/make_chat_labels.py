#!/usr/bin/env python3
"""make_chat_labels.py: writes tests/data_files/chat/cases.jsonl, what Hugging Face's Jinja
rendering and Axolotl's chat_template strategy give for a set of conversations; the C test
tests/text/test_chat_cases.c checks eft's src/text/chat_* against it exactly.

The labels come from Axolotl itself, not from a re-implementation: ChatTemplateStrategy from
`axolotl` 0.19.0 (the version that locates turns by diffing renders in character space), which
installs cleanly without its heavy dependencies into a venv that sees /work/pyenv's packages:

  python3 -m venv /tmp/axo-venv
  /work/pyenv/bin/python -c 'import site; print(site.getsitepackages()[0])' \
      > /tmp/axo-venv/lib/python3.11/site-packages/pyenv.pth
  /tmp/axo-venv/bin/pip install --no-deps axolotl==0.19.0 datasets multiprocess pandas \
      python-dateutil pytz tzdata dill xxhash pyarrow colorama addict
  /tmp/axo-venv/bin/python tools/make_chat_labels.py ../shared tests/data_files/chat/cases.jsonl

With `--random N [--seed S]` it writes N random conversations instead (random roles, options
and content mixing words, ASCII and Unicode whitespace, multi-byte text, reasoning-channel markers,
the placeholder's brackets and special tokens), a wider check to run by hand: copy the output over
cases.jsonl, run build/text_test_chat_cases, restore the file.

Templates: gemma4 is ../shared/data/chat-templates/gemma4.jinja (identical to Axolotl's gemma4 and
gemma4_unified); gemma3 and chatml are Axolotl's own (read from the installed package). Each is
rendered by the tokenizer's apply_chat_template (transformers' sandboxed Jinja environment).

Tokenizers: gemma4 cases use the Gemma-4-style test tokenizer (the derivation of
tests/support/gemma4_tokenizer.c, redone here into a temporary folder); gemma3 and chatml cases use
../shared's Gemma 3 tokenizer, in which chatml's markers are ordinary text.

Each line: name, template, tokenizer, messages ({role, content, train?}), opts (roles_to_train,
train_on_eos, train_on_eot, eot_tokens, drop_system_message, train_on_inputs), text (the whole
conversation rendered), text_gen (rendered with add_generation_prompt), ids and labels (-100 =
not trained), or "error" (a substring of the template's exception) for conversations the
template refuses, or "tokenize_error" where only Axolotl's tokenization fails (an empty
conversation after drop_system_message).
"""
import json
import os
import random
import sys
import tempfile

import axolotl
from axolotl.prompt_strategies.chat_template import ChatTemplatePrompter, ChatTemplateStrategy
from transformers import AutoTokenizer

RENAMES = {46: "<|tool>", 47: "<tool|>", 48: "<|tool_call>", 49: "<tool_call|>",
           50: "<|tool_response>", 51: "<tool_response|>", 52: '<|"|>', 98: "<|think|>",
           100: "<|channel>", 101: "<channel|>", 105: "<|turn>", 106: "<turn|>",
           255999: "<|image>", 256000: "<|audio>", 258880: "<|image|>", 258881: "<|audio|>",
           258882: "<image|>", 258883: "<audio|>", 258884: "<|video|>"}
DROPPED = 262144


def derive_gemma4_tokenizer(src, dst):
    """The folder tests/support/gemma4_tokenizer.c builds (see its header)."""
    tj = json.load(open(os.path.join(src, "tokenizer.json")))
    vocab = tj["model"]["vocab"]
    added = []
    for a in tj["added_tokens"]:
        if a["id"] == DROPPED:
            continue
        if a["id"] in RENAMES:
            vocab[RENAMES[a["id"]]] = vocab.pop(a["content"])
            a["content"], a["special"] = RENAMES[a["id"]], True
        added.append(a)
    tj["added_tokens"] = added
    cfg = json.load(open(os.path.join(src, "tokenizer_config.json")))
    dec = cfg.get("added_tokens_decoder", {})
    for k in list(dec):
        if int(k) == DROPPED:
            del dec[k]
        elif int(k) in RENAMES:
            dec[k]["content"], dec[k]["special"] = RENAMES[int(k)], True
    cfg.update(eos_token="<turn|>", boi_token="<|image>", eoi_token="<image|>",
               image_token="<|image|>")
    cfg.pop("extra_special_tokens", None)
    cfg.pop("chat_template", None)
    json.dump(tj, open(os.path.join(dst, "tokenizer.json"), "w"))
    json.dump(cfg, open(os.path.join(dst, "tokenizer_config.json"), "w"))


def M(role, content, train=None):
    m = {"role": role, "content": content}
    if train is not None:
        m["train"] = train
    return m


SYS, USR, AST, DEV, TOOL = "system", "user", "assistant", "developer", "tool"
SPEC = [M(SYS, "You are helpful."), M(USR, "Hi!"), M(AST, "Hello!")]
MULTI = [M(USR, "What is 2+2?"), M(AST, "4."), M(USR, "And 3+3?"), M(AST, "6, of course."),
         M(USR, "Thanks"), M(AST, "You're welcome!")]

# (name, messages, opts overrides)
GEMMA4 = [
    ("spec_example", SPEC, {}),
    ("developer_first", [M(DEV, "Answer tersely."), M(USR, "Capital of France?"), M(AST, "Paris.")], {}),
    ("no_system", [M(USR, "Hi"), M(AST, "Hey there")], {}),
    ("multi_turn", MULTI, {}),
    ("consecutive_assistant", [M(USR, "Tell me two things."), M(AST, "First thing."),
                               M(AST, "Second thing.")], {}),
    ("assistant_tool_assistant", [M(USR, "Look it up."), M(AST, "Looking."), M(TOOL, "result: 42"),
                                  M(AST, "It is 42.")], {}),
    ("spaces_around", [M(SYS, "  padded system \n"), M(USR, "   hi there   "),
                       M(AST, "  spaced answer.  "), M(USR, "\tok\n"), M(AST, "\n\nfine\n\n")], {}),
    ("empty_assistant", [M(USR, "Say nothing."), M(AST, ""), M(USR, "Now say hi."), M(AST, "hi")], {}),
    ("blank_assistant", [M(USR, "Blank?"), M(AST, "   \n "), M(USR, "ok"), M(AST, "done")], {}),
    ("unicode", [M(USR, "日本語で答えて。"), M(AST, "はい、わかりました！ 👍🏽"),
                 M(USR, "Ça va? ñandú"), M(AST, "Très bien — merci. 🇯🇵 e\u0301")], {}),
    ("unicode_whitespace", [M(USR, "\u3000\u00a0wide\u2003"), M(AST, "\u2028\u0085nel\x1c\u205f"),
                            M(USR, "\u200bzero width\u200b"), M(AST, "\u202fkept\u200b")], {}),
    ("reasoning_channel", [M(USR, "2+2?"),
                           M(AST, "<|channel>thought\nAdd the numbers.<channel|>The answer is 4.")], {}),
    ("reasoning_messy", [M(USR, "x"),
                         M(AST, "  Before <|channel>hidden<channel|> middle <|channel>more<channel|>after  "),
                         M(USR, "y"), M(AST, "tail <|channel>never closed"), M(USR, "z"),
                         M(AST, "only close<channel|> rest")], {}),
    ("train_user_too", MULTI, {"roles_to_train": ["assistant", "user"]}),
    ("train_user_only", MULTI, {"roles_to_train": ["user"]}),
    ("train_system", SPEC, {"roles_to_train": ["system", "assistant"]}),
    ("train_developer", [M(DEV, "Be brief."), M(USR, "Hi"), M(AST, "Hi.")],
     {"roles_to_train": ["developer", "assistant"]}),
    ("train_none_roles", MULTI, {"roles_to_train": []}),
    ("eos_all", MULTI, {"train_on_eos": "all"}),
    ("eos_last", MULTI, {"train_on_eos": "last"}),
    ("eos_none", MULTI, {"train_on_eos": "none"}),
    ("eos_all_with_system", SPEC + [M(USR, "Bye"), M(AST, "Bye!")], {"train_on_eos": "all"}),
    ("eot_empty_eos_all", MULTI, {"eot_tokens": [], "train_on_eos": "all", "train_on_eot": "none"}),
    ("eot_eos_token_last", MULTI, {"eot_tokens": ["<eos>"], "train_on_eos": "last",
                                   "train_on_eot": "turn"}),
    ("eot_last_eos_all", MULTI, {"eot_tokens": [], "train_on_eos": "all", "train_on_eot": "last"}),
    ("train_on_inputs", SPEC + [M(USR, "More?"), M(AST, "Sure.")], {"train_on_inputs": True}),
    ("per_message_train", [M(USR, "Q1", True), M(AST, "A1", False), M(USR, "Q2"), M(AST, "A2")], {}),
    ("per_message_train_inputs", [M(SYS, "S", False), M(USR, "Q1"), M(AST, "A1", False)],
     {"train_on_inputs": True}),
    ("drop_system", SPEC + [M(USR, "Again"), M(AST, "Hello again!")], {"drop_system_message": True}),
    ("drop_system_absent", [M(DEV, "dev stays"), M(USR, "Hi"), M(AST, "Yo")],
     {"drop_system_message": True}),
    ("system_in_middle", [M(USR, "Hi"), M(SYS, "New rule: be formal."), M(AST, "Good day.")], {}),
    ("only_system_and_user", [M(SYS, "Rules."), M(USR, "No answer here.")], {}),
    ("assistant_first", [M(AST, "I speak first."), M(USR, "ok"), M(AST, "Then again.")], {}),
    ("consecutive_users", [M(USR, "One."), M(USR, "Two."), M(AST, "Three.")], {}),
    ("tool_first_and_trained", [M(TOOL, "orphan tool output"), M(USR, "Hi"), M(AST, "Hello")],
     {"roles_to_train": ["assistant", "tool"], "train_on_eos": "all"}),
    ("sentinel_lookalike", [M(USR, "[[dummy_message]]"), M(AST, "[[see note]] zz"),
                            M(USR, "zz"), M(AST, "[[x]]")], {}),
    ("special_text_in_content", [M(USR, "what is <turn|>?"), M(AST, "It ends a turn: <turn|> like so.")],
     {}),
    ("code_and_newlines", [M(USR, "Write code.\n\nPlease."),
                           M(AST, "```python\ndef f(x):\n    return x * 2\n```\n\nDone.")], {}),
    ("long_content", [M(USR, "Repeat."), M(AST, " ".join(["token%d" % i for i in range(120)]))], {}),
]

GEMMA3 = [
    ("g3_spec", SPEC, {}),
    ("g3_multi", MULTI, {}),
    ("g3_system_spaces", [M(SYS, "  keep my spaces  "), M(USR, "  hi  "), M(AST, "  yo  ")], {}),
    ("g3_train_system", SPEC + [M(USR, "Q"), M(AST, "A")], {"roles_to_train": ["system", "assistant"]}),
    ("g3_unicode", [M(USR, "Grüße 🌍"), M(AST, "\u3000こんにちは\u3000")], {}),
    ("g3_odd_tool", [M(USR, "run"), M(TOOL, "tool says hi"), M(USR, "and?"), M(AST, "done")], {}),
    ("g3_not_alternating", [M(USR, "a"), M(USR, "b")], {}),
    ("g3_developer_first", [M(DEV, "rules"), M(USR, "hi")], {}),
    ("g3_assistant_first", [M(AST, "hello")], {}),
    ("g3_only_system", [M(SYS, "alone")], {}),
]

CHATML = [
    ("cm_spec", SPEC, {}),
    ("cm_multi", MULTI, {"train_on_eos": "all"}),
    ("cm_spaces_kept", [M(SYS, " sys "), M(USR, "  hi  "), M(AST, "\n lead and trail \n")], {}),
    ("cm_roles", [M(DEV, "dev"), M(USR, "u"), M(TOOL, "t"), M(AST, "a"), M(AST, "b")],
     {"roles_to_train": ["assistant", "tool"]}),
    ("cm_empty", [M(USR, "q"), M(AST, "")], {}),
]

PIECES = ["Hello", "world", "42", ".", ",", "?", "!", " ", "  ", "\n", "\n\n", "\t", "\u3000",
          "\u00a0", "\u2003", "\u200b", "é", "日本語", "👍🏽", "ñandú", "<|channel>", "<channel|>",
          "thought\n", "[[", "]]", "zz", "<turn|>", "<bos>", "```", "-", "'s", "\x1c"]


def random_text(rng):
    if rng.random() < 0.1:
        return rng.choice(["", " ", "\n"])
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12)))


def random_case(rng, i):
    template = rng.choice(["gemma4"] * 6 + ["gemma3"] * 2 + ["chatml"])
    n = rng.randint(1, 7)
    if template == "gemma3":
        roles = ["system"] if rng.random() < 0.4 else []
        roles += ["user" if k % 2 == 0 else rng.choice(["assistant"] * 4 + ["tool", "system"])
                  for k in range(n)]
        if rng.random() < 0.1:
            rng.shuffle(roles)
    else:
        roles = [rng.choice([SYS, DEV, USR, USR, AST, AST, AST, TOOL]) for _ in range(n)]
    messages = [M(r, random_text(rng), rng.choice([None] * 6 + [True, False])) for r in roles]
    eos = rng.choice(["turn", "all", "last", "none"])
    overrides = {"roles_to_train": rng.sample([SYS, DEV, USR, AST, TOOL], rng.randint(0, 3)),
                 "train_on_eos": eos, "drop_system_message": rng.random() < 0.2,
                 "train_on_inputs": rng.random() < 0.15}
    if template == "gemma4" and rng.random() < 0.3:  # eos is <turn|>: keep it out of eot_tokens
        overrides.update(eot_tokens=[], train_on_eot=rng.choice(["turn", "all", "last", "none"]))
    if rng.random() < 0.1:
        overrides["roles_to_train"] = ["assistant"]
    return template, ("random_%d" % i, messages, overrides)


DEFAULTS = dict(roles_to_train=["assistant"], train_on_eos="turn", train_on_eot=None,
                eot_tokens=None, drop_system_message=False, train_on_inputs=False)


def run_case(name, template, tok_name, tok, source, messages, overrides):
    opts = dict(DEFAULTS, **overrides)
    if opts["eot_tokens"] is None:
        opts["eot_tokens"] = ["<turn|>"] if template == "gemma4" else ["<end_of_turn>"]
    rec = {"name": name, "template": template, "tokenizer": tok_name, "messages": messages,
           "opts": opts}
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    try:
        rec["text"] = tok.apply_chat_template(plain, tokenize=False, chat_template=source)
        rec["text_gen"] = tok.apply_chat_template(plain, tokenize=False, chat_template=source,
                                                  add_generation_prompt=True)
    except Exception as e:  # the template's raise_exception
        rec["error"] = str(e)
        return rec
    prompter = ChatTemplatePrompter(tok, chat_template=source, message_field_training="train",
                                    drop_system_message=opts["drop_system_message"])
    strategy = ChatTemplateStrategy(prompter, tok, train_on_inputs=opts["train_on_inputs"],
                                    sequence_len=1 << 20, roles_to_train=opts["roles_to_train"],
                                    train_on_eos=opts["train_on_eos"],
                                    train_on_eot=opts["train_on_eot"],
                                    eot_tokens=list(opts["eot_tokens"]))
    try:
        out = strategy.tokenize_prompt({"messages": [dict(m) for m in messages]})
    except ValueError as e:  # e.g. nothing left after drop_system_message
        rec["tokenize_error"] = str(e)
        return rec
    rec["ids"], rec["labels"] = list(out["input_ids"]), list(out["labels"])
    # The C test tokenizes the rendering itself; make sure it is the text Axolotl tokenized.
    kept = plain[1:] if opts["drop_system_message"] and plain[0]["role"] == "system" else plain
    text = tok.apply_chat_template(kept, tokenize=False, chat_template=source)
    assert tok(text, add_special_tokens=False)["input_ids"] == rec["ids"], name
    return rec


def main():
    shared, out_path = sys.argv[1], sys.argv[2]
    gemma4, gemma3, chatml = GEMMA4, GEMMA3, CHATML
    if "--random" in sys.argv:
        rng = random.Random(int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0)
        cases = [random_case(rng, i) for i in range(int(sys.argv[sys.argv.index("--random") + 1]))]
        gemma4, gemma3, chatml = ([c for t, c in cases if t == want]
                                  for want in ("gemma4", "gemma3", "chatml"))

    assert axolotl.__version__ == "0.19.0", axolotl.__version__
    g3_dir = os.path.join(shared, "data/gemma3-tokenizer")
    tmpl_dir = os.path.join(os.path.dirname(axolotl.__file__), "utils/chat_templates/templates")
    sources = {"gemma4": open(os.path.join(shared, "data/chat-templates/gemma4.jinja")).read()}
    for name in ("gemma3", "chatml"):
        sources[name] = open(os.path.join(tmpl_dir, name + ".jinja")).read()
    for name in ("gemma4", "gemma4_unified"):
        assert open(os.path.join(tmpl_dir, name + ".jinja")).read() == sources["gemma4"], name
    with tempfile.TemporaryDirectory() as g4_dir:
        derive_gemma4_tokenizer(g3_dir, g4_dir)
        g4 = AutoTokenizer.from_pretrained(g4_dir)
        g3 = AutoTokenizer.from_pretrained(g3_dir)
        hf_gemma3 = g3.chat_template  # google's own Gemma 3 template
        recs = []
        for template, tok_name, tok, cases in (("gemma4", "gemma4", g4, gemma4),
                                                ("gemma3", "gemma3", g3, gemma3),
                                                ("chatml", "gemma3", g3, chatml)):
            for name, messages, overrides in cases:
                rec = run_case(name, template, tok_name, tok, sources[template], messages, overrides)
                if template == "gemma3" and "text" in rec:  # eft treats both as gemma3
                    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
                    assert g3.apply_chat_template(plain, tokenize=False, chat_template=hf_gemma3) \
                        == rec["text"], name
                recs.append(rec)
    with open(out_path, "w") as f:
        for rec in recs:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print("%d cases -> %s" % (len(recs), out_path))


if __name__ == "__main__":
    main()
