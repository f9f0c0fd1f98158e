"""Every prompt template in one place, with the model family it is for.

- Pre-query prefixes: what a question generator sees before it writes a question (QFT trains on exactly these).
- The solvability judge prompt (our wording of the paper's two checks) and its final-line verdict format.
- The two QPO rewrite prompts (solvability, difficulty) for the optimizer LLM, ending in a `Rewritten problem:` line
  (model family: any instruction-following chat model; the paper used GPT-4o-mini).
- The solver instruction lives in `ResponsesConfig.instruction` (step by step, final answer in \\boxed{}).
"""

from __future__ import annotations

# Qwen2 / Qwen2-Math ChatML with its default system prompt.
QWEN2_PREFIX = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
QWEN2_STOP = ["<|im_end|>", "<|endoftext|>"]
# DeepSeekMath-RL's template: "User: {question}\n\nAssistant:" (the BOS token is added by the tokenizer).
DEEPSEEK_PREFIX = "User: "
DEEPSEEK_STOP = ["\n\nAssistant:", "<｜end▁of▁sentence｜>"]

_SENTINEL = "\x00SCALEQUEST-QUERY\x00"

JUDGE_TEMPLATE = """You are reviewing a candidate math problem written by a problem generator.

Problem:
\"\"\"
{question}
\"\"\"

Answer two questions about it:
1. Is it a mathematics problem (it asks for a value, expression, proof or count that mathematics determines)?
2. Can it be solved from the conditions it states alone: no missing or contradictory information, no reference to \
figures, tables or earlier problems that are not included, and one well-defined answer?

Reason briefly about both, then end with a final line of exactly this form:
Verdict: Yes
if the answer to both questions is yes, otherwise:
Verdict: No"""


def judge_prompt(question: str) -> str:
    """The user-turn text asking the judge about `question` (format it with the judge's chat template)."""
    return JUDGE_TEMPLATE.format(question=question.strip())


# QPO (question preference optimization): the optimizer LLM rewrites one sampled question, asked for ONE kind of
# improvement at a time (the paper found asking for both at once too hard). The answer's last marked line is parsed.
REWRITE_MARKER = "Rewritten problem:"

SOLVABILITY_REWRITE_TEMPLATE = """You are checking and repairing a math problem written by a problem generator.

Problem:
\"\"\"
{question}
\"\"\"

Check three things:
1. It is a real mathematics problem (not a statement, a request for an essay, or several unrelated questions).
2. It can be solved from the conditions it states alone: nothing missing or contradictory, no reference to figures, \
tables or earlier problems that are not included.
3. Its answer is one number.

Then write the repaired problem: fix every failed check with as few changes as possible (add the missing condition, \
remove the contradiction, make it ask for one number). Keep its topic and setting. If all checks pass, only make the \
wording clear and precise. Do not include the solution or the answer.

Reason briefly, then end with a final line of exactly this form, with the whole problem on that one line:
{marker} <the complete repaired problem>"""

DIFFICULTY_REWRITE_TEMPLATE = """You are making a math problem harder for a strong student.

Problem:
\"\"\"
{question}
\"\"\"

Rewrite it so that solving it needs more reasoning steps: for example, one more quantity to work out first, an extra \
condition to combine, or a relation that must be derived before the final computation. It must stay solvable from its \
own conditions, with one number as the answer. Keep its topic and setting and add only a little text (at most one or \
two short sentences). Do not include the solution or the answer.

Reason briefly, then end with a final line of exactly this form, with the whole problem on that one line:
{marker} <the complete harder problem>"""

REWRITE_TEMPLATES = {"solvability": SOLVABILITY_REWRITE_TEMPLATE, "difficulty": DIFFICULTY_REWRITE_TEMPLATE}


def rewrite_prompt(mode: str, question: str) -> str:
    """The user-turn text asking the optimizer LLM to improve `question` for `mode` ('solvability' | 'difficulty')."""
    try:
        template = REWRITE_TEMPLATES[mode]
    except KeyError:
        raise ValueError(f"rewrite mode {mode!r}: expected one of {sorted(REWRITE_TEMPLATES)}") from None
    return template.format(question=question.strip(), marker=REWRITE_MARKER)


def prefix_from_chat_template(tokenizer) -> tuple[str, list[str]]:
    """Derive (pre-query prefix, end-of-turn stops) from a tokenizer's chat template.

    Renders a one-message user chat with a sentinel as content (the template's default system prompt, if any, is
    kept) and returns the text before the sentinel; the stop is what the template puts right after the user content
    (first line of it) plus the EOS token.
    """
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": _SENTINEL}], tokenize=False, add_generation_prompt=False
    )
    if _SENTINEL not in rendered:
        raise ValueError("the chat template does not place the user message verbatim; use template: custom")
    before, after = rendered.split(_SENTINEL, 1)
    bos = getattr(tokenizer, "bos_token", None)
    if bos and before.startswith(bos) and _adds_bos(tokenizer):
        before = before[len(bos):]  # the tokenizer adds BOS itself when vLLM encodes the prompt
    stops = []
    end_of_turn = after.strip("\n").split("\n")[0].strip()
    if end_of_turn:
        stops.append(end_of_turn)
    if tokenizer.eos_token and tokenizer.eos_token not in stops:
        stops.append(tokenizer.eos_token)
    return before, stops


def _adds_bos(tokenizer) -> bool:
    ids = tokenizer("x").input_ids
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def generator_prefix(template: str, custom_prefix: str | None, tokenizer=None) -> tuple[str, list[str]]:
    """(pre-query prefix, stop strings) for a generator family: 'qwen2', 'deepseek', 'custom' or 'auto'.

    'auto' needs the generator's tokenizer; 'custom' uses `custom_prefix` and stops at the tokenizer's EOS if given.
    """
    if template == "qwen2":
        return QWEN2_PREFIX, list(QWEN2_STOP)
    if template == "deepseek":
        return DEEPSEEK_PREFIX, list(DEEPSEEK_STOP)
    if template == "custom":
        eos = getattr(tokenizer, "eos_token", None)
        return custom_prefix or "", [eos] if eos else []
    if template == "auto":
        if tokenizer is None:
            raise ValueError("template 'auto' needs the generator's tokenizer")
        return prefix_from_chat_template(tokenizer)
    raise ValueError(f"unknown template '{template}': expected auto, qwen2, deepseek or custom")
