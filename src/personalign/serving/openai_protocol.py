"""OpenAI's request and response shapes <-> personalign's GenerationRequest and results.

A request is checked field by field before anything reaches the engine: OpenAI's own fields keep their meaning
(and their defaults: temperature 1, top_p 1), fields OpenAI has that personalign does not implement are refused
by name when set to anything but their no-op value, unknown fields are refused, and the personalization fields
(`preference`, `dims`, `beta`, `top_k`, `method`, `reward`, `system_info`) arrive through the client's
`extra_body`. Without them a request is plain chat with the base model.
"""

import time
import uuid
from dataclasses import dataclass

from ..decoding import methods
from ..decoding.request import GenerationRequest, GenerationResult
from ..errors import PersonalignError
from ..preferences import Preference
from .http_errors import ApiError

# personalign's own fields, sent with the openai client's `extra_body`
EXTENSIONS = ("preference", "dims", "beta", "top_k", "method", "reward", "end_of_turn", "system_info",
              "allow_negative_beta")
_COMMON = ("model", "max_tokens", "temperature", "top_p", "seed", "stop", "n", "stream", "stream_options", "user")
CHAT_FIELDS = _COMMON + ("messages", "max_completion_tokens") + EXTENSIONS
COMPLETION_FIELDS = _COMMON + ("prompt",) + EXTENSIONS
# OpenAI fields accepted only at their no-op value (clients send some of them by default)
_NO_OP = {"frequency_penalty": (0, 0.0), "presence_penalty": (0, 0.0), "logprobs": (False, None),
          "top_logprobs": (None, 0), "logit_bias": (None, {}), "tools": (None, []), "tool_choice": (None, "none"),
          "parallel_tool_calls": (None, True, False), "response_format": (None, {"type": "text"}),
          "echo": (False,), "best_of": (None, 1), "suffix": (None,), "store": (None, False), "metadata": (None, {}),
          "service_tier": (None, "auto", "default"), "modalities": (None, ["text"])}
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_FINISH = {"eos": "stop", "stop": "stop", "length": "length"}


@dataclass
class ParsedRequest:
    request: GenerationRequest
    stream: bool
    include_usage: bool


@dataclass
class Limits:
    max_tokens: int  # the most tokens one answer may ask for; also the default when a request names none


def parse_chat(body, model_name: str, limits: Limits) -> ParsedRequest:
    body = _object(body, CHAT_FIELDS)
    messages = _messages(body.get("messages"))
    tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    param = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    return _parse(body, messages, model_name, limits, tokens, param)


def parse_completion(body, model_name: str, limits: Limits) -> ParsedRequest:
    """personalign answers through the model's chat template: `prompt` is read as one user turn."""
    body = _object(body, COMPLETION_FIELDS)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(400, "prompt must be one string (a list of several prompts, or token ids, is not supported: "
                            "send one request per prompt)", param="prompt")
    return _parse(body, prompt, model_name, limits, body.get("max_tokens"), "max_tokens")


def _object(body, known: tuple[str, ...]) -> dict:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    for name, value in body.items():
        if name in known:
            continue
        if name in _NO_OP:
            if value not in _NO_OP[name]:
                raise ApiError(400, f"{name}={value!r} is not supported by personalign (leave it out)", param=name)
            continue
        raise ApiError(400, f"unknown field {name!r}; personalign reads: {', '.join(known)}", param=name)
    return body


def _messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of {role, content} objects", param="messages")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise ApiError(400, f"messages[{i}] must be an object whose role is one of {', '.join(_ROLES)}",
                           param="messages")
        out.append({"role": _ROLES[message["role"]], "content": _text(message.get("content"), i)})
    if out[-1]["role"] != "user" or not out[-1]["content"].strip():
        raise ApiError(400, "the last message must be a non-empty user message", param="messages")
    return out


def _text(content, i: int) -> str:
    """A message's content: a string, or a list of text parts (joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise ApiError(400, f"messages[{i}].content must be text (a string or a list of text parts; images and audio "
                        "are not supported)", param="messages")


def _parse(body: dict, prompt, model_name: str, limits: Limits, max_tokens, tokens_param: str) -> ParsedRequest:
    if not isinstance(body.get("model", ""), str):
        raise ApiError(400, "model must be a string", param="model")
    if body.get("model") not in (None, model_name):
        raise ApiError(404, f"the model {body['model']!r} does not exist here; this server answers with "
                            f"{model_name!r} (GET /v1/models)", param="model", code="model_not_found")
    if body.get("n", 1) not in (1, None):
        raise ApiError(400, "n must be 1: personalign returns one choice per request (send several requests)",
                       param="n")
    stream = _bool(body, "stream")
    options = body.get("stream_options")
    if options is not None and (not stream or not isinstance(options, dict) or set(options) - {"include_usage"}):
        raise ApiError(400, 'stream_options is {"include_usage": true|false}, with stream true',
                       param="stream_options")
    if not isinstance(body.get("user", ""), str):
        raise ApiError(400, "user must be a string", param="user")
    if max_tokens is None:
        max_tokens = limits.max_tokens
    elif _is_int(max_tokens) and max_tokens > limits.max_tokens:
        raise ApiError(400, f"{tokens_param} {max_tokens} is more than this server allows ({limits.max_tokens})",
                       param=tokens_param)
    settings = {"max_new_tokens": max_tokens, "temperature": body.get("temperature", 1.0),
                "top_p": body.get("top_p", 1.0), "seed": body.get("seed"), "stop": _stop(body.get("stop"))}
    for name in ("beta", "top_k", "reward", "end_of_turn", "system_info", "allow_negative_beta"):
        if body.get(name) is not None:
            settings[name] = body[name]
    for name in ("temperature", "top_p"):
        if settings[name] is None:
            settings[name] = 1.0
    preference = parse_preference(body)
    method = body.get("method") or (methods.UNPERSONALIZED if preference.is_empty else methods.DEFAULT)
    if not isinstance(method, str):
        raise ApiError(400, f"method must be a string, one of {', '.join(methods.names())}", param="method")
    try:
        request = GenerationRequest(prompt, preference, method=method, **settings)
    except PersonalignError as error:  # said in the request's own field names
        message = str(error).replace("max_new_tokens", tokens_param).replace("--method", "method")
        raise ApiError(400, message, param=_param_named(str(error), tokens_param)) from None
    include_usage = bool(options and options.get("include_usage"))
    return ParsedRequest(request, stream, include_usage)


def parse_preference(body: dict) -> Preference:
    """The request's `preference` (text or catalog names) or `dims` (weights), checked; none when neither."""
    text, dims = body.get("preference"), body.get("dims")
    try:
        if text is not None and dims is not None:
            raise ApiError(400, "give preference or dims, not both", param="dims")
        if dims is not None:
            if not isinstance(dims, (dict, str)):
                raise ApiError(400, 'dims must be an object of weights, e.g. {"concise": 0.7, "friendly": 0.3}',
                               param="dims")
            return Preference.from_dims(dims)
        if text is not None and not isinstance(text, str):
            raise ApiError(400, "preference must be a string: free text or a catalog name", param="preference")
        return Preference.parse(text)
    except PersonalignError as error:
        raise ApiError(400, str(error), param="dims" if dims is not None else "preference") from None


def _stop(stop) -> tuple[str, ...]:
    if stop is None:
        return ()
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, "stop must be a non-empty string or a list of up to 4 of them", param="stop")
    return tuple(stop)


def _bool(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false", param=name)
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _param_named(message: str, tokens_param: str) -> str | None:
    """The request field a GenerationRequest error is about, from how its message starts."""
    starts = [("max_new_tokens", tokens_param), ("unknown method", "method"), ("unknown reward", "reward"),
              ("unknown end_of_turn", "end_of_turn"),
              ("system_info", "system_info"), ("the prompt", "messages"), ("a chat prompt", "messages")]
    starts += [(name, name) for name in ("beta", "top_k", "temperature", "top_p", "seed", "stop")]
    if "needs a preference" in message:
        return "preference"
    return next((param for start, param in starts if message.startswith(start)), None)


# ---- responses -------------------------------------------------------------------------------------------------
def usage(result: GenerationResult) -> dict:
    prompt, completion = len(result.prompt_token_ids), len(result.token_ids)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(result: GenerationResult) -> str:
    return _FINISH[result.finish_reason]


def personalization(result: GenerationResult) -> dict:
    """What personalized the answer (an extension field beside OpenAI's)."""
    return {"method": result.method, "preference": result.preference, "beta": result.beta}


class Shaper:
    """One response's id, timestamps and object names, for /v1/chat/completions or /v1/completions."""

    def __init__(self, model_name: str, chat: bool):
        self.model, self.chat = model_name, chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _envelope(self, obj: str, choices: list, **extra) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model, "choices": choices,
                **extra}

    def complete(self, result: GenerationResult) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": result.text}}
        else:
            choice = {"index": 0, "text": result.text}
        choice |= {"finish_reason": finish_reason(result), "logprobs": None}
        return self._envelope("chat.completion" if self.chat else "text_completion", [choice], usage=usage(result),
                              personalign=personalization(result))

    def chunk(self, text: str | None, finish: str | None = None, first: bool = False, **extra) -> dict:
        if self.chat:
            delta = {"role": "assistant", "content": text or ""} if first else {} if text is None else {"content": text}
            choice = {"index": 0, "delta": delta}
        else:
            choice = {"index": 0, "text": text or ""}
        choice |= {"finish_reason": finish, "logprobs": None}
        return self._envelope("chat.completion.chunk" if self.chat else "text_completion", [choice], **extra)

    def usage_chunk(self, result: GenerationResult) -> dict:
        return self._envelope("chat.completion.chunk" if self.chat else "text_completion", [],
                              usage=usage(result))
