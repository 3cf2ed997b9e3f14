"""Ollama's Modelfile for an exported GGUF: its TEMPLATE derived from the model's own chat template.

The tokenizer's Jinja chat template is not something Ollama runs; its
templates are Go templates over `.Messages`. So the template is learnt from
the tokenizer: a conversation with marker contents (system, user, assistant,
user) is rendered one message at a time with `apply_chat_template`, each
message's text split around its marker gives that role's prefix and suffix,
the text the template puts before a first user message when there is no
system message (a default system prompt, a BOS) is taken from a second
render, and the generation prompt from a third. The result is written as a
Go template, then checked: `render` (a small interpreter of exactly the Go
template subset emitted here) must give the tokenizer's own text for sample
conversations, or the export says the template could not be translated.

Stop words: every end-of-answer token, and the special token that opens a
new turn (a model that starts one has finished its answer).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ExportError
from core.messages import msg

MARK = {"system": "\x01SYSTEM\x01", "user": "\x01USER\x01", "assistant": "\x01ASSISTANT\x01",
        "user2": "\x01USER-2\x01"}


@dataclass
class Template:
    """The pieces around each role's content; `first_user` comes before a conversation's first user message."""
    roles: dict[str, tuple[str, str]]
    first_user: str
    generation: str

    def go(self) -> str:
        """As an Ollama (Go text/template) TEMPLATE; no trim markers, so every newline stays as rendered."""
        parts = ["{{ range $i, $_ := .Messages }}"]
        for n, role in enumerate(("system", "user", "assistant")):
            pre, suf = (_literal(p) for p in self.roles[role])
            head = "{{ if eq $i 0 }}" + _literal(self.first_user) + "{{ end }}" if role == "user" and self.first_user \
                else ""
            parts.append(("{{ if" if n == 0 else "{{ else if") + f' eq .Role "{role}" }}}}{head}{pre}{{{{ .Content }}}}{suf}')
        parts.append("{{ end }}{{ end }}" + _literal(self.generation))
        return "".join(parts)


def derive(tokenizer) -> Template:
    """The role pieces of `tokenizer`'s chat template; ExportError when it depends on more than the role."""
    conversation = [{"role": "system", "content": MARK["system"]}, {"role": "user", "content": MARK["user"]},
                    {"role": "assistant", "content": MARK["assistant"]}, {"role": "user", "content": MARK["user2"]}]
    try:
        renders = [_render_hf(tokenizer, conversation[:k]) for k in range(1, 5)]
        generation_render = _render_hf(tokenizer, conversation, generation=True)
        no_system = _render_hf(tokenizer, conversation[1:2])
    except Exception as err:  # a template that refuses these conversations cannot be learnt this way
        raise ExportError(msg("ollama.template_failed", detail=str(err)[:200])) from None
    segments = [renders[0]]
    for before, after in zip(renders, renders[1:]):
        if not after.startswith(before):
            raise ExportError(msg("ollama.template_failed", detail=msg("ollama.why.changes_before")))
        segments.append(after[len(before):])
    roles = {"system": _split(segments[0], MARK["system"]), "user": _split(segments[1], MARK["user"]),
             "assistant": _split(segments[2], MARK["assistant"])}
    if _split(segments[3], MARK["user2"]) != roles["user"]:
        raise ExportError(msg("ollama.template_failed", detail=msg("ollama.why.user_turns_differ")))
    user_text = roles["user"][0] + MARK["user"] + roles["user"][1]
    if not no_system.endswith(user_text):
        raise ExportError(msg("ollama.template_failed", detail=msg("ollama.why.lone_user")))
    return Template(roles=roles, first_user=no_system[:-len(user_text)],
                    generation=generation_render[len(renders[-1]):])


def stop_words(tokenizer, template: Template, stop_ids: list[int]) -> list[str]:
    """Each end-of-answer token, then the special token that opens a user turn (e.g. <|im_start|>)."""
    words = [tokenizer.convert_ids_to_tokens(i) for i in stop_ids]
    special = set(tokenizer.all_special_tokens) | {str(t) for t in tokenizer.added_tokens_decoder.values()}
    opener = next((t for t in sorted(special, key=len, reverse=True) if t and template.roles["user"][0].startswith(t)),
                  None)
    return list(dict.fromkeys([w for w in words + [opener] if w]))


def modelfile(gguf_name: str, template: Template | None, stops: list[str], system_prompt: str) -> str:
    """The Modelfile text: FROM the GGUF beside it, TEMPLATE, one PARAMETER stop per stop word, SYSTEM."""
    lines = [f"FROM ./{gguf_name}"]
    if template is not None:
        lines.append(f'TEMPLATE """{template.go()}"""')
    lines += [f"PARAMETER stop {_quoted(word)}" for word in stops]
    if system_prompt.strip():
        lines.append(f'SYSTEM """{system_prompt.strip()}"""')
    return "\n".join(lines) + "\n"


def render(template: str, messages: list[dict]) -> str:
    """Run a Go template of the subset `Template.go` writes (range over .Messages with $i, if / else if /
    end on `eq .Role "x"` or `eq $i N`, .Content, literal text) — what Ollama will send the model."""
    nodes, rest = _parse(_tokens(template), stop=())
    if rest:
        raise ValueError(f"unexpected {rest[0]!r}")
    return "".join(_run(nodes, {"Messages": messages}, None, None))


def _render_hf(tokenizer, messages: list[dict], generation: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def _split(segment: str, mark: str) -> tuple[str, str]:
    if segment.count(mark) != 1:
        raise ExportError(msg("ollama.template_failed", detail=msg("ollama.why.content_not_once")))
    before, after = segment.split(mark)
    return before, after


def _literal(text: str) -> str:
    """Text for a Go template: only `{{` means something there; `\"\"\"` would end the Modelfile string."""
    if '"""' in text:
        raise ExportError(msg("ollama.template_failed", detail=msg("ollama.why.triple_quotes")))
    return text.replace("{{", '{{ "{{" }}')


def _quoted(word: str) -> str:
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)


def _tokens(template: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    for m in _ACTION.finditer(template):
        if m.start() > pos:
            out.append(("text", template[pos:m.start()]))
        out.append(("action", m.group(1).strip()))
        pos = m.end()
    if pos < len(template):
        out.append(("text", template[pos:]))
    return out


def _parse(tokens: list, stop: tuple[str, ...]) -> tuple[list, list]:
    """Nodes until an action starting with one of `stop` (left in the rest)."""
    nodes = []
    while tokens:
        kind, value = tokens[0]
        if kind == "action" and value.startswith(stop):
            break
        tokens = tokens[1:]
        if kind == "text":
            nodes.append(("text", value))
        elif value.startswith("range "):
            body, tokens = _parse(tokens, ("end",))
            nodes.append(("range", value, body))
            tokens = tokens[1:]
        elif value.startswith("if "):
            branches = []
            condition = value[3:]
            while True:
                body, tokens = _parse(tokens, ("else", "end"))
                branches.append((condition, body))
                head = tokens[0][1]
                tokens = tokens[1:]
                if head == "end":
                    break
                condition = head[8:] if head.startswith("else if ") else "true"
            nodes.append(("if", branches))
        else:
            nodes.append(("value", value))
    return nodes, tokens


def _run(nodes: list, data: dict, item: dict | None, index: int | None):
    for node in nodes:
        if node[0] == "text":
            yield node[1]
        elif node[0] == "value":
            yield _value(node[1], item, index)
        elif node[0] == "range":
            if not re.fullmatch(r"range \$i, \$_ := \.Messages", node[1]):
                raise ValueError(f"unsupported {node[1]!r}")
            for i, message in enumerate(data["Messages"]):
                yield from _run(node[2], data, message, i)
        else:
            for condition, body in node[1]:
                if _condition(condition, item, index):
                    yield from _run(body, data, item, index)
                    break


def _value(expr: str, item: dict | None, index: int | None):
    if expr.startswith('"') and expr.endswith('"'):
        return expr[1:-1]
    if expr in (".Content", ".Role"):
        return item[expr[1:].lower()]
    if expr == "$i":
        return index
    raise ValueError(f"unsupported {expr!r}")


def _condition(expr: str, item: dict | None, index: int | None) -> bool:
    if expr == "true":
        return True
    m = re.fullmatch(r'eq (\.Role|\$i) ("[^"]*"|\d+)', expr)
    if not m:
        raise ValueError(f"unsupported condition {expr!r}")
    right = m.group(2)[1:-1] if m.group(2).startswith('"') else int(m.group(2))
    return _value(m.group(1), item, index) == right
