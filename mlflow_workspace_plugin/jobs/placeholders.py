"""Placeholders in a job's ``command``: find them, normalise the preview spelling, render values.

Forms (both spellings of seed 004 and CLI v2):

- ``${{inputs.x}}``, ``${{outputs.x}}``, ``${{search_space.x}}`` (today);
- ``{inputs.x}``, ``{outputs.x}``, ``{search_space.x}`` (2021 preview; rewritten to ``${{...}}`` as
  azure-ai-ml does);
- ``$[[ ... ]]``: an optional block (CLI v2), dropped when a placeholder inside it has no value.

Rendered values are escaped for the quoting context each placeholder stands in (bare, ``'...'``,
``"..."``, ``$'...'``; found by the lexer of :mod:`mlflow_workspace_plugin.shell_quoting`), so the
command receives exactly the value's text whatever characters it holds: numbers and plain paths stay
readable, a bare value with spaces or quotes stays one argument, and ``'${{inputs.x}}'`` /
``"${{inputs.x}}"`` cannot be broken out of. A placeholder where no escaping is certain (inside
backticks, ``${...}``, ``$((...))``, a here-document, right after ``\\`` or ``$``) is an error naming
it. A NUL character in the rendered command is an error too (no process can receive it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlflow_workspace_plugin.jobs.errors import JobSpecError
from mlflow_workspace_plugin.shell_quoting import Slot, UnsafeSlot, escape_for, slot_contexts

KINDS = ("inputs", "outputs", "search_space")
ALLOWED_FORMS = "${{inputs.<name>}}, ${{outputs.<name>}}, ${{search_space.<name>}} (or {inputs.<name>} ...)"

_BINDING = re.compile(r"\$\{\{(?P<body>.*?)\}\}", re.S)
_PREVIEW = re.compile(r"(?<![{$])\{(?P<kind>inputs|outputs|search_space)\.(?P<name>[^{}]*)\}(?!\})")
_OPTIONAL = re.compile(r"\$\[\[(?P<body>.*?)\]\]", re.S)
_REFERENCE = re.compile(r"\s*(?P<kind>inputs|outputs|search_space)\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\Z")


@dataclass(frozen=True)
class Placeholder:
    """One placeholder occurrence in a command."""

    kind: str  # "inputs" | "outputs" | "search_space"
    name: str
    text: str  # exactly as written, e.g. "{inputs.iris}" or "${{ inputs.iris }}"
    start: int
    end: int
    optional_block: bool  # inside a $[[ ... ]] block
    preview: bool  # written in the 2021 preview spelling {inputs.x}

    @property
    def key(self) -> str:
        """``inputs.x``: the key of this placeholder's value in :func:`render_command`'s mapping."""
        return f"{self.kind}.{self.name}"

    @property
    def canonical(self) -> str:
        """``${{inputs.x}}``."""
        return "${{" + self.key + "}}"


def find_placeholders(
    command: str, *, source_file: Path | str | None = None, field: str = "command"
) -> list[Placeholder]:
    """Every placeholder in ``command`` in order; a malformed one raises :class:`JobSpecError` naming it."""
    blocks = _optional_blocks(command, source_file, field)
    found: list[Placeholder] = []
    for match in _BINDING.finditer(command):
        reference = _REFERENCE.match(match.group("body"))
        if reference is None:
            raise JobSpecError.at(
                source_file, field, f"unsupported expression {match.group(0)!r}; allowed: {ALLOWED_FORMS}"
            )
        found.append(_placeholder(reference["kind"], reference["name"], match, blocks, preview=False))
    for match in _PREVIEW.finditer(command):
        if _inside(match.start(), [(m.start(), m.end()) for m in _BINDING.finditer(command)]):
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", match["name"]):
            raise JobSpecError.at(
                source_file, field, f"malformed placeholder {match.group(0)!r}; names are letters, digits and _"
            )
        found.append(_placeholder(match["kind"], match["name"], match, blocks, preview=True))
    return sorted(found, key=lambda p: p.start)


def normalize_command(command: str, *, source_file: Path | str | None = None, field: str = "command") -> str:
    """``command`` with every placeholder spelled ``${{kind.name}}``, surrounding blank space trimmed.

    A placeholder standing where no escaping is certain is an error now (see :func:`check_quoting`).
    """
    check_quoting(command, source_file=source_file, field=field)
    pieces, position = [], 0
    for placeholder in find_placeholders(command, source_file=source_file, field=field):
        pieces += [command[position : placeholder.start], placeholder.canonical]
        position = placeholder.end
    pieces.append(command[position:])
    return "".join(pieces).strip()


def render_command(command: str, values: Mapping[str, str | None], *, source_file: Path | str | None = None,
                   field: str = "command") -> str:
    """Substitute ``values`` (keys ``inputs.x`` / ``outputs.x`` / ``search_space.x``) into ``command``.

    Each value is escaped for the quoting context its placeholder stands in (see the module text). A
    ``$[[ ... ]]`` block is dropped when one of its placeholders has no value (missing key or None) and
    kept without its brackets otherwise. A placeholder outside such a block with no value, one where no
    escaping is certain, and a NUL character raise :class:`JobSpecError`.
    """
    placeholders = find_placeholders(command, source_file=source_file, field=field)
    blocks = _optional_blocks(command, source_file, field)
    dropped = [
        (start, end)
        for start, end in blocks
        if any(values.get(p.key) is None for p in placeholders if start <= p.start < end)
    ]
    for placeholder in placeholders:
        if not placeholder.optional_block and values.get(placeholder.key) is None:
            raise JobSpecError.at(
                source_file, field,
                f"no value for {placeholder.text}; known: {', '.join(sorted(values)) or '(none)'}")
    pieces = _pieces(command, placeholders, blocks, dropped)
    try:
        contexts = slot_contexts(pieces)
    except UnsafeSlot as error:
        raise JobSpecError.at(source_file, field, str(error)) from None
    texts = iter(escape_for(context, str(values[slot.key])) for slot, context in
                 zip([p for p in pieces if isinstance(p, _ValueSlot)], contexts, strict=True))
    rendered = "".join(next(texts) if isinstance(piece, Slot) else piece for piece in pieces)
    if "\0" in rendered:
        where = next((f"the value of {p.text}" for p in placeholders if "\0" in str(values.get(p.key) or "")),
                     "the command")
        raise JobSpecError.at(source_file, field, f"{where} holds a NUL character (\\0), which no process can "
                              "receive in a command; remove it")
    return rendered


def check_quoting(command: str, *, source_file: Path | str | None = None, field: str = "command") -> None:
    """Raise :class:`JobSpecError` now if a placeholder of ``command`` stands where no escaping is certain
    (checked with every optional block kept; rendering checks again with the blocks it drops)."""
    placeholders = find_placeholders(command, source_file=source_file, field=field)
    try:
        slot_contexts(_pieces(command, placeholders, _optional_blocks(command, source_file, field), []))
    except UnsafeSlot as error:
        raise JobSpecError.at(source_file, field, str(error)) from None


@dataclass
class _ValueSlot(Slot):
    """A placeholder's slot: ``label`` is the placeholder as written, ``key`` its value's key (``inputs.x``)."""

    key: str = ""


def _pieces(command: str, placeholders: list[Placeholder], blocks: list[tuple[int, int]],
            dropped: list[tuple[int, int]]) -> list[str | Slot]:
    """``command`` as literal text and placeholder slots, with dropped blocks removed and the ``$[[``
    / ``]]`` markers of kept ones taken out (the shell reads the command in that form)."""
    cuts: list[tuple[int, int, Placeholder | None]] = [(start, end, None) for start, end in dropped]
    for start, end in blocks:
        if (start, end) not in dropped:
            cuts += [(start, start + 3, None), (end - 2, end, None)]
    cuts += [(p.start, p.end, p) for p in placeholders if not _inside(p.start, dropped)]
    pieces: list[str | Slot] = []
    position = 0
    for start, end, placeholder in sorted(cuts, key=lambda cut: cut[0]):
        pieces.append(command[position:start])
        if placeholder is not None:
            pieces.append(_ValueSlot(placeholder.text, placeholder.key))
        position = end
    pieces.append(command[position:])
    return pieces


def _optional_blocks(command: str, source_file: Path | str | None, field: str) -> list[tuple[int, int]]:
    blocks = [(m.start(), m.end()) for m in _OPTIONAL.finditer(command)]
    for start, end in blocks:
        if "$[[" in command[start + 3 : end]:
            raise JobSpecError.at(source_file, field, "optional blocks $[[ ... ]] cannot be nested")
    outside = _OPTIONAL.sub("", command)
    if "$[[" in outside:
        raise JobSpecError.at(source_file, field, "an optional block '$[[' is not closed with ']]'")
    return blocks


def _placeholder(kind: str, name: str, match: re.Match, blocks: list[tuple[int, int]], *, preview: bool) -> Placeholder:
    return Placeholder(
        kind=kind,
        name=name,
        text=match.group(0),
        start=match.start(),
        end=match.end(),
        optional_block=_inside(match.start(), blocks),
        preview=preview,
    )


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)
