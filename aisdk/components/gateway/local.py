"""The offline provider `local`: real answers without a network.

`local/extractive` is an offline extractive answerer: it writes nothing of
its own, it picks sentences from the documents in the prompt. The question
is the last user turn; the documents are what the prompt marks between
`<documents>` and `</documents>` (numbered snippets `[1] ...`), or else the
other turns of the conversation (a tool's results, earlier turns). It picks
the one source that supports the question best and answers with that
source's sentences most similar to the question (WordLlama), in their
original order, so an answer never mixes documents and never repeats an
instruction or a label. Given tools, it calls each one whose
description is similar to the question (above TOOL_THRESHOLD), one per round
and the most similar first, with the question as its string argument, and
answers once the results are in. `local/wordllama` embeds with WordLlama's
256-dimension vectors. Both report usage counted by litellm's token counter,
so cost, limits and reports run the same path as a hosted provider.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aisdk.components import offload

if TYPE_CHECKING:
    from wordllama import WordLlama  # type: ignore[import-untyped]

PROVIDER = "local"
CHAT_MODEL = "local/extractive"
EMBEDDING_MODEL = "local/wordllama"
EMBEDDING_DIMENSIONS = 256
# Nominal prices (US dollars per token): small, but above zero, so that every
# path that handles cost is exercised offline.
PRICES: dict[str, dict[str, Any]] = {
    CHAT_MODEL: {"input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7, "mode": "chat"},
    EMBEDDING_MODEL: {"input_cost_per_token": 1e-8, "output_cost_per_token": 0.0, "mode": "embedding"},
}
DEFAULT_SENTENCES = 3
# A sentence joins the answer when it scores at least this share of the best
# one: the answer stays on the question instead of padding to a count.
RELATIVE_SCORE = 0.6
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_DOCUMENTS = re.compile(r"<documents>(.*?)</documents>", re.S)
# A snippet's number at the start of a line ("[2] ...") begins the next snippet.
_SNIPPET = re.compile(r"^\[\d+\]\s*", re.M)
_NUMBER = re.compile(r"^\[\d+\]\s*")
# A line that only names what follows ("Context:", "Knowledge base:").
_LABEL = re.compile(r"[^.!?:]{1,40}:")
_WORD = re.compile(r"[a-z0-9]+")
# WordLlama similarity between the question and a tool's description above
# which the tool is called. Measured: a description naming the documents'
# topics scores 0.29-0.63 for questions on them; greetings, jokes and sums
# score at most 0.17 against it.
TOOL_THRESHOLD = 0.2


@cache
def wordllama() -> WordLlama:
    """The model, loaded once per process from the weights in the wheel.
    Plain `load()` would look for the tokenizer where the wheel does not put
    it and go to the network."""
    import wordllama as package
    from wordllama import WordLlama

    return WordLlama.load(cache_dir=Path(package.__file__).parent, disable_download=True)


def sentences(text: str) -> list[str]:
    """The sentences of a text, without labels ("Context:") or snippet numbers."""
    out = []
    for raw in _SENTENCE_END.split(text):
        sentence = _NUMBER.sub("", raw.strip())
        if sentence and not _LABEL.fullmatch(sentence):
            out.append(sentence)
    return out


def _last_user(messages: Sequence[dict[str, Any]]) -> int:
    return max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)


def _snippets(marked: str) -> list[str]:
    parts = [p.strip() for p in _SNIPPET.split(marked)]
    return [p for p in parts if p]


def split_question(messages: Sequence[dict[str, Any]]) -> tuple[str, list[str]]:
    """The question and the sources it may be answered from, from the
    request's structure: the question is the last user turn (less any marked
    documents in it), the sources the marked documents' snippets, else every
    other turn that is not an instruction (a system turn without documents).
    Only a lone user turn with nothing marked (`prompt="<text> <question>"`)
    is split by sentence: its last sentence asks, the rest is the source."""
    last = _last_user(messages)
    sources: list[str] = []
    asked = ""
    for i, message in enumerate(messages):
        content = str(message.get("content") or "")
        marked = _DOCUMENTS.search(content)
        if marked:
            sources.extend(_snippets(marked.group(1)))
            content = _DOCUMENTS.sub(" ", content)
        if i == last:
            asked = content.strip()
        elif not marked and message.get("role") != "system" and content.strip():
            sources.append(content)
    if not sources and len(messages) == 1 and last == 0:
        said = sentences(asked)
        if len(said) > 1:
            return said[-1], [" ".join(said[:-1])]
    return " ".join(asked.split()), sources


def _lexical(question: str, source: str) -> float:
    """The share of the question's words the source contains (exact terms count)."""
    asked = set(_WORD.findall(question.lower()))
    held = set(_WORD.findall(source.lower()))
    return len(asked & held) / len(asked) if asked else 0.0


def extract(messages: Sequence[dict[str, Any]], max_sentences: int = DEFAULT_SENTENCES) -> str:
    """The sentences of the best-supported source that best answer the
    question, in that source's order. With no source, the extractive model
    answers with the prompt itself: it writes nothing of its own.

    A source's support is its WordLlama similarity to the question plus
    the share of the question's words it holds. The question is embedded
    once and the sources in one batch (the same cosines as one
    `similarity` call per source, a third of the time)."""
    question, sources = split_question(messages)
    candidates = [(s, found) for s in sources if (found := sentences(s))]
    if not candidates:
        # A lone prompt is the only text there is to pick from.
        return question
    if not question:
        return " ".join(candidates[0][1][:max_sentences])
    model = wordllama()
    query = model.embed(question)[0]

    def similarities(texts: list[str]) -> list[float]:
        return [float(x) for x in np.atleast_1d(model.vector_similarity(query, model.embed(texts)).squeeze())]

    support = similarities([s for s, _ in candidates])
    # The first of equals wins: sources come best first from retrieval.
    _, first = max((support[i] + _lexical(question, s), -i) for i, (s, _) in enumerate(candidates))
    best = candidates[-first][1]
    if len(best) == 1:
        return best[0]
    ranked = sorted(zip(best, similarities(best)), key=lambda x: x[1], reverse=True)
    top = ranked[0][1]
    chosen = {text for text, score in ranked[:max_sentences] if score >= top * RELATIVE_SCORE} | {ranked[0][0]}
    return " ".join(s for s in best if s in chosen)


def _string_parameter(schema: Any) -> str | None:
    """The parameter the question goes into: the first required string
    parameter, else the first string one."""
    if not isinstance(schema, dict):
        return None
    properties = schema.get("properties") or {}
    strings = [name for name, p in properties.items() if isinstance(p, dict) and p.get("type") == "string"]
    required = [str(name) for name in schema.get("required") or () if name in strings]
    chosen = required or [str(name) for name in strings]
    return chosen[0] if chosen else None


def _called(messages: Sequence[dict[str, Any]]) -> set[str]:
    """The tools called since the last user turn."""
    out: set[str] = set()
    for m in messages[_last_user(messages) + 1:]:
        for call in m.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else getattr(call, "function", None)
            name = function.get("name") if isinstance(function, dict) else getattr(function, "name", None)
            if name:
                out.add(str(name))
    return out


def choose_tool(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> tuple[str, str] | None:
    """(tool name, argument name) of the tool to call for the last user turn,
    or None to answer. Each matching tool is called once for that turn, one
    per round and the most similar first; then the model answers."""
    last_user = _last_user(messages)
    if last_user < 0:
        return None
    called = _called(messages)
    question, _ = split_question(messages)
    best: tuple[float, str, str] | None = None
    for tool in tools:
        function = tool.get("function") or {}
        name, argument = function.get("name"), _string_parameter(function.get("parameters"))
        if not name or argument is None or name in called:
            continue  # nothing to put the question in, or it has answered
        score = float(wordllama().similarity(question, f"{function.get('description') or ''}"))
        if score >= TOOL_THRESHOLD and (best is None or score > best[0]):
            best = (score, name, argument)
    return None if best is None else (best[1], best[2])


def truncate_words(text: str, max_tokens: int | None, model: str) -> tuple[str, bool]:
    """Cut the answer to max_tokens (counted the way usage is); True if cut.
    One encoding of the text, cut at the token limit and back to the last
    whole word: linear in the answer's length."""
    if not max_tokens or count_text(model, text) <= max_tokens:
        return text, False
    import litellm

    head = str(litellm.decode(model=model, tokens=litellm.encode(model=model, text=text)[:max_tokens]))
    words = head.split(" ")
    if not text.startswith(head + " ") and len(words) > 1:
        words.pop()  # the last word was cut inside
    # The usage counter may count a few tokens more than the encoder.
    while words and count_text(model, " ".join(words)) > max_tokens:
        words.pop()
    return " ".join(words), True


def count_text(model: str, text: str) -> int:
    import litellm

    return int(litellm.token_counter(model=model, text=text))


def count_messages(model: str, messages: Sequence[dict[str, Any]]) -> int:
    import litellm

    return int(litellm.token_counter(model=model, messages=list(messages)))


def embed(model: str, texts: list[str], encoding: str = "float") -> tuple[list[dict[str, Any]], int]:
    """The embedding response's data and its token count. With encoding
    "base64" each vector is its little-endian float32 bytes in base64, as
    OpenAI's API gives them: one string instead of hundreds of floats for
    litellm to carry through its response objects on the event loop."""
    vectors = wordllama().embed(texts, norm=True)
    tokens = sum(count_text(model, text) for text in texts)
    rows: list[Any] = ([base64.b64encode(row.astype("<f4").tobytes()).decode() for row in vectors]
                       if encoding == "base64" else vectors.tolist())
    return [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)], tokens


def _read_request(model: str, messages: list[dict[str, Any]],
                  tools: Sequence[dict[str, Any]]) -> tuple[int, tuple[str, str] | None]:
    """The prompt's tokens and the tool to call, if any."""
    return count_messages(model, messages), choose_tool(messages, tools)


def _tool_call(messages: list[dict[str, Any]], tool: str, argument: str) -> Any:
    """The call of `tool` with the question as its argument. Its id is
    derived from the conversation, so a repeated call is the same call."""
    from litellm.types.utils import ChatCompletionMessageToolCall, Function

    arguments = json.dumps({argument: split_question(messages)[0]})
    call_id = "call_" + hashlib.sha256(json.dumps([messages, tool], default=str).encode()).hexdigest()[:24]
    return ChatCompletionMessageToolCall(id=call_id, type="function", function=Function(name=tool, arguments=arguments))


def provider() -> Any:
    """The litellm CustomLLM serving provider `local` (built on first use,
    since its base class lives in litellm)."""
    from litellm.llms.custom_llm import CustomLLM
    from litellm.types.utils import EmbeddingResponse, GenericStreamingChunk, ModelResponse, Usage

    class LocalProvider(CustomLLM):
        def _answer(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> tuple[str, str]:
            text, cut = truncate_words(extract(messages), params.get("max_tokens"), f"{PROVIDER}/{model}")
            return text, "length" if cut else "stop"

        def _complete(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any],
                      ) -> tuple[int, Any, str, str, int]:
            """The prompt's tokens, the tool call (None to answer), the text
            (the call's arguments, or the answer), its finish reason and its
            tokens: all the CPU work of a completion, for one thread trip."""
            name = f"{PROVIDER}/{model}"
            prompt_tokens, chosen = _read_request(name, messages, params.get("tools") or ())
            if chosen is not None:
                call = _tool_call(messages, *chosen)
                text, finish = call.function.arguments, "tool_calls"
            else:
                call = None
                text, finish = self._answer(model, messages, params)
            return prompt_tokens, call, text, finish, count_text(name, text)

        async def acompletion(
            self, model: str, messages: list[dict[str, Any]], api_base: str, custom_prompt_dict: dict[str, Any],
            model_response: ModelResponse, print_verbose: Any, encoding: Any, api_key: Any, logging_obj: Any,
            optional_params: dict[str, Any], *args: Any, **kwargs: Any,
        ) -> ModelResponse:
            # Counting, WordLlama's ranking and similarity: CPU work, off the loop.
            prompt_tokens, call, text, finish, completion_tokens = await offload.in_thread(
                self._complete, model, messages, optional_params)
            model_response.choices[0].message.content = None if call is not None else text
            if call is not None:
                model_response.choices[0].message.tool_calls = [call]
            setattr(model_response.choices[0], "finish_reason", finish)
            model_response.model = model
            setattr(model_response, "usage", Usage(
                prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ))
            return model_response

        async def astreaming(  # type: ignore[override]  # an async generator, as litellm calls it
            self, model: str, messages: list[dict[str, Any]], api_base: str, custom_prompt_dict: dict[str, Any],
            model_response: ModelResponse, print_verbose: Any, encoding: Any, api_key: Any, logging_obj: Any,
            optional_params: dict[str, Any], *args: Any, **kwargs: Any,
        ) -> AsyncIterator[GenericStreamingChunk]:
            chosen = await offload.in_thread(choose_tool, messages, optional_params.get("tools") or ())
            if chosen is not None:
                # One chunk with the whole call: litellm's stream of a custom
                # provider takes a call per chunk (GenericStreamingChunk.tool_use).
                call = _tool_call(messages, *chosen)
                yield GenericStreamingChunk(
                    text="", is_finished=True, finish_reason="tool_calls", usage=None, index=0,
                    tool_use={"id": call.id, "type": "function", "index": 0,
                              "function": {"name": call.function.name, "arguments": call.function.arguments}},
                )
                return
            text, finish = await offload.in_thread(self._answer, model, messages, optional_params)
            words = text.split(" ")
            for i, word in enumerate(words):
                last = i == len(words) - 1
                yield GenericStreamingChunk(
                    text=word if i == 0 else f" {word}", is_finished=last, finish_reason=finish if last else "",
                    usage=None, index=0, tool_use=None,
                )

        async def aembedding(
            self, model: str, input: list[str], model_response: EmbeddingResponse, *args: Any, **kwargs: Any,
        ) -> EmbeddingResponse:
            # Off the loop: WordLlama's tokenizer and numpy release the GIL.
            metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
            encoding = str(metadata.get("encoding_format") or "float")
            data, tokens = await offload.in_thread(embed, f"{PROVIDER}/{model}", list(input), encoding)
            model_response.data = data
            model_response.model = model
            setattr(model_response, "usage", Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens))
            return model_response

    return LocalProvider()
