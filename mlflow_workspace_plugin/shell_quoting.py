"""Where a value slot stands in a shell command, and how to write a value there so the shell reads exactly it.

Standard library only (ground floor): both doors that substitute values into commands use it, a job's
placeholders (``jobs.placeholders``) and an MLproject's ``{param}`` (:func:`format_command`).

A command runs with ``bash -c``. A placeholder may stand bare (``--x ${{inputs.x}}``), inside
single quotes (``'${{inputs.x}}'``), double quotes (``"${{inputs.x}}"``) or bash's ``$'...'``; each
context needs its own escaping, and escaping for the wrong one is an injection (``shlex.quote`` inside
single quotes closes them). :func:`slot_contexts` runs a small POSIX-sh / bash lexer over the command's
literal text and reports the context of each slot; :func:`escape_for` writes a value for a context.

The lexer follows backslashes (outside quotes: the next character is literal; inside double quotes:
only before ``$ ` " \\`` and newline), quotes, comments (``#`` at a word's start), here-documents
(``<<`` / ``<<-``, quoted or not), and keeps a stack for ``$(...)``, ``$((...))``, ``${...}`` and
backticks so the context *after* them is right. A slot inside ``$(...)`` is in a fresh bare context
(its own quotes are tracked); inside backticks, ``${...}``, ``$((...))`` or a here-document the shell
re-reads or evaluates the text, so no escaping is certain there: such a slot is refused, as is a slot
right after an unquoted ``\\`` or ``$`` (it would be glued to the value's first character). The
lexer does not know ``case ... )`` patterns inside ``$(...)``: a ``)`` there closes the substitution
early for it — write such commands in a script file.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BARE = "bare"
SINGLE = "single-quoted"
DOUBLE = "double-quoted"
ANSI = "$'...'-quoted"
COMMENT = "comment"

_CMDSUB = "$(...)"
_ARITH = "$((...))"
_PARAM = "${...}"
_BACKTICK = "`...`"
_HEREDOC = "a here-document"
_REFUSED = (_ARITH, _PARAM, _BACKTICK, _HEREDOC)
_WORD_BREAK = " \t\n;&|()<>"


class UnsafeSlot(ValueError):
    """A slot stands where no escaping makes the shell read a value as written."""


@dataclass
class Slot:
    """A value slot between pieces of literal command text."""

    label: str  # how the slot is shown in errors, e.g. "${{inputs.x}}"


@dataclass
class _Frame:
    kind: str
    depth: int = 0  # open parentheses / braces inside this frame
    delimiter: str = ""  # here-document: the closing line
    strip_tabs: bool = False


def escape_for(context: str, value: str) -> str:
    """``value`` written so that, standing in ``context``, the shell reads exactly ``value``."""
    if context == BARE:
        return shlex.quote(value) if "=" not in value else "'" + value.replace("'", "'\\''") + "'"
    if context == SINGLE:
        return value.replace("'", "'\\''")
    if context == DOUBLE:
        return "".join("\\" + c if c in '\\$`"' else c for c in value)
    if context == ANSI:
        return value.replace("\\", "\\\\").replace("'", "\\'")
    if context == COMMENT:  # only a newline ends a comment; the value is not part of the command
        return value.replace("\n", " ")
    raise ValueError(f"unknown shell context {context!r}")


def slot_contexts(pieces: Sequence[str | Slot]) -> list[str]:
    """The context (:data:`BARE`, :data:`SINGLE`, ...) of every :class:`Slot` in ``pieces``, in order.

    Raises :class:`UnsafeSlot` naming the slot when it stands where escaping cannot be relied on.
    """
    lexer = _Lexer()
    contexts: list[str] = []
    for piece in pieces:
        if isinstance(piece, Slot):
            contexts.append(lexer.slot(piece.label))
        else:
            lexer.feed(piece)
    return contexts


def format_command(template: str, values: Mapping[str, str]) -> str:
    """``template.format(**values)`` (Python format syntax, as MLproject commands use), each value
    escaped for the quoting context its ``{field}`` stands in. Raises :class:`UnsafeSlot`."""
    formatter = string.Formatter()
    pieces: list[str | Slot] = []
    texts: list[str] = []
    for literal, field, spec, conversion in formatter.parse(template):
        pieces.append(literal)
        if field is None:
            continue
        value, _ = formatter.get_field(field, (), values)
        texts.append(formatter.format_field(formatter.convert_field(value, conversion), spec or ""))
        pieces.append(Slot("{" + field + "}"))
    escaped = iter(escape_for(context, text) for context, text in zip(slot_contexts(pieces), texts, strict=True))
    return "".join(next(escaped) if isinstance(piece, Slot) else piece for piece in pieces)


class _Lexer:
    def __init__(self) -> None:
        self.stack = [_Frame(BARE)]
        self.escaped = False  # the previous character was an unconsumed backslash
        self.previous = ""  # the previous character (for '#' at a word start and '$' before a slot)
        self.heredocs: list[_Frame] = []  # here-documents whose body starts at the next newline
        self.line_start = True

    def slot(self, label: str) -> str:
        kind = self.stack[-1].kind
        if kind in _REFUSED:
            raise UnsafeSlot(f"{label} stands inside {kind}, where the shell evaluates its text again: "
                             "no quoting is safe there; pass the value as an argument or variable instead")
        if self.escaped:
            raise UnsafeSlot(f"{label} follows a backslash, which would escape the value's first character; "
                             "remove the backslash")
        if self.previous == "$" and kind != SINGLE and kind != COMMENT:
            raise UnsafeSlot(f"{label} follows a '$', which would join the value into a shell expansion; "
                             "remove the '$' or quote it")
        self.previous = "a"  # a value is word text
        self.line_start = False
        return BARE if kind == _CMDSUB else kind

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            i = self._step(text, i)

    def _push(self, kind: str) -> None:
        self.stack.append(_Frame(kind))

    def _step(self, text: str, i: int) -> int:
        frame = self.stack[-1]
        c = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if self.escaped:  # the character a backslash escaped
            self.escaped = False
            self.previous = "a"
            self.line_start = False
            return i + 1
        if frame.kind == _HEREDOC:
            return self._heredoc_line(text, i, frame)
        self.line_start = False
        if frame.kind == SINGLE:
            if c == "'":
                self.stack.pop()
        elif frame.kind == ANSI:
            if c == "\\":
                self.escaped = True
            elif c == "'":
                self.stack.pop()
        elif frame.kind == COMMENT:
            if c == "\n":
                self.stack.pop()
                return self._newline(i)
        elif frame.kind == _BACKTICK:
            if c == "\\":
                self.escaped = True
            elif c == "`":
                self.stack.pop()
        elif frame.kind == DOUBLE:
            if c == "\\":
                if nxt in '$`"\\\n' or not nxt:
                    self.escaped = True
            elif c == '"':
                self.stack.pop()
            elif c == "`":
                self._push(_BACKTICK)
            elif c == "$":
                return self._dollar(text, i, nxt, in_double=True)
        elif frame.kind == _ARITH:
            if c == "(":
                frame.depth += 1
            elif c == ")":
                if frame.depth:
                    frame.depth -= 1
                else:  # "))"
                    self.stack.pop()
                    self.previous = ")"
                    return i + 2
        else:  # BARE, $(...), ${...}
            return self._bare(text, i, c, nxt, frame)
        self.previous = c
        return i + 1

    def _bare(self, text: str, i: int, c: str, nxt: str, frame: _Frame) -> int:
        if c == "\\":
            self.escaped = True
        elif c == "'":
            self._push(SINGLE)
        elif c == '"':
            self._push(DOUBLE)
        elif c == "`":
            self._push(_BACKTICK)
        elif c == "$":
            return self._dollar(text, i, nxt, in_double=False)
        elif c == "#" and self.previous in ("", *_WORD_BREAK) and frame.kind != _PARAM:
            self._push(COMMENT)
        elif frame.kind == _PARAM and c == "{":
            frame.depth += 1
        elif frame.kind == _PARAM and c == "}":
            if frame.depth:
                frame.depth -= 1
            else:
                self.stack.pop()
        elif frame.kind == _CMDSUB and c == "(":
            frame.depth += 1
        elif frame.kind == _CMDSUB and c == ")":
            if frame.depth:
                frame.depth -= 1
            else:
                self.stack.pop()
        elif c == "<" and nxt == "<" and frame.kind != _PARAM:
            return self._heredoc_start(text, i)
        elif c == "\n":
            self.previous = c
            return self._newline(i)
        self.previous = c
        return i + 1

    def _dollar(self, text: str, i: int, nxt: str, *, in_double: bool) -> int:
        if nxt == "'" and not in_double:
            self._push(ANSI)
        elif nxt == '"' and not in_double:
            self._push(DOUBLE)
        elif nxt == "(" and text[i + 2 : i + 3] == "(":
            self._push(_ARITH)
            self.previous = "("
            return i + 3
        elif nxt == "(":
            self._push(_CMDSUB)
        elif nxt == "{":
            self._push(_PARAM)
        else:
            self.previous = "$"
            return i + 1
        self.previous = nxt
        return i + 2

    def _heredoc_start(self, text: str, i: int) -> int:
        j = i + 2
        if text[j : j + 1] == "<":  # <<< here-string: an ordinary word follows
            self.previous = "<"
            return j + 1
        strip_tabs = text[j : j + 1] == "-"
        j += strip_tabs
        while j < len(text) and text[j] in " \t":
            j += 1
        word = []
        while j < len(text) and text[j] not in _WORD_BREAK:
            if text[j] not in "'\"\\":
                word.append(text[j])
            j += 1
        if word:
            self.heredocs.append(_Frame(_HEREDOC, delimiter="".join(word), strip_tabs=strip_tabs))
        self.previous = "a"
        return j

    def _newline(self, i: int) -> int:
        self.line_start = True
        if self.heredocs and self.stack[-1].kind in (BARE, _CMDSUB):
            self.stack.extend(reversed(self.heredocs))  # the first here-document's body comes first
            self.heredocs = []
        self.previous = "\n"
        return i + 1

    def _heredoc_line(self, text: str, i: int, frame: _Frame) -> int:
        end = text.find("\n", i)
        line = text[i:] if end < 0 else text[i:end]
        if frame.strip_tabs:
            line = line.lstrip("\t")
        if end < 0:  # the line goes on past this piece (into a slot): still in the body
            self.line_start = False
            return len(text)
        if line == frame.delimiter:
            self.stack.pop()
        self.previous = "\n"
        return end + 1
