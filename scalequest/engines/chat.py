"""Chat formatting from a model's own tokenizer: the solver/judge user turn and a generator's pre-query prefix."""

from __future__ import annotations

import threading

from scalequest.prompts import generator_prefix

_LOAD_LOCK = threading.Lock()


class ChatFormatter:
    """Formats prompts with the chat template of the tokenizer at `model_path`.

    Loads only the tokenizer, on first use (so instances pickle small); `trust_remote_code` follows the model config.
    `learn_frame()` renders the user turn once around a sentinel: when the template puts the text in verbatim (checked
    on a second probe with edge whitespace, newlines and braces), `user_prompt` is then plain concatenation, and a
    pickled copy carries the frame, not the tokenizer: a stage actor never imports transformers (~9 CPU-s each, which
    a lazy load spent mid-run, beside the engine). Templates that change the text (e.g. `| trim`) keep the tokenizer.
    """

    def __init__(self, model_path: str, trust_remote_code: bool = False):
        self.model_path, self.trust_remote_code = model_path, trust_remote_code
        self._tokenizer = None
        self._frame: tuple[str, str] | None = None  # (before, after) the user text, once learned and verified

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            with _LOAD_LOCK:  # stage actors call from several threads; transformers' lazy imports are not thread-safe
                if self._tokenizer is None:
                    from transformers import AutoTokenizer

                    self._tokenizer = AutoTokenizer.from_pretrained(self.model_path,
                                                                    trust_remote_code=self.trust_remote_code)
        return self._tokenizer

    def __getstate__(self):  # ship the path, not the tokenizer, to Ray actors
        return {**self.__dict__, "_tokenizer": None}

    def user_prompt(self, text: str) -> str:
        """`text` as one user turn followed by the assistant's generation prompt."""
        if self._frame is not None:
            return self._frame[0] + text + self._frame[1]
        return self._render(text)

    def _render(self, text: str) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            return f"{text}\n\n"
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )

    def learn_frame(self) -> ChatFormatter:
        """Learn the text that the template puts before and after a user turn's content, when it puts the content
        in verbatim (two probes agree); else leave `user_prompt` on the tokenizer. Returns self."""
        sentinel, probe = "\x00scalequest-frame\x00", "  Two lines,\nwith {{ braces }} and <tags>.  \n"
        before, found, after = self._render(sentinel).partition(sentinel)
        if found and sentinel not in after and self._render(probe) == before + probe + after:
            self._frame = (before, after)
        return self

    def prefix(self, template: str, custom_prefix: str | None = None) -> tuple[str, list[str]]:
        """(pre-query prefix, end-of-turn stop strings) for a generator of family `template`."""
        return generator_prefix(template, custom_prefix, self.tokenizer)
