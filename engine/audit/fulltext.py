"""Full-text tokens for PostgreSQL's audit search, made to match SQLite's FTS5 ``unicode61``.

FTS5's ``unicode61`` tokenizer (what the SQLite store indexes with) splits text at every
character that is not a letter or a digit, folds case and removes diacritics. PostgreSQL's own
text-search parser does not: it keeps ``request.approved`` or ``alice@example.com`` as one
token. So the PostgreSQL store does not use that parser at all: the engine tokenizes here, in
Python, and writes the tsvector and tsquery as literals (lexemes with positions), so the same
history query finds the same events on both stores.

Each field of an event is indexed at positions that leave a gap after it, so a phrase never
matches across two fields (as with FTS5's per-column phrases).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

#: PostgreSQL's limits: a lexeme is at most 2046 bytes; positions stop at 16383
_MAX_LEXEME_BYTES = 2046
_MAX_POSITION = 16383
#: letters and digits (``str.isalnum``); on ASCII text exactly [A-Za-z0-9]
_WORD = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    """The words of ``text`` as unicode61 sees them: letters and digits, folded, no accents."""
    if text.isascii():  # performance: most audit text; no accents to fold, one regex scan
        words: list[str] = _WORD.findall(text.lower())
        # (no word of a text shorter than the limit can pass it: no check per word)
        return words if len(text) <= _MAX_LEXEME_BYTES else [t for t in words if len(t) <= _MAX_LEXEME_BYTES]
    folded = unicodedata.normalize("NFKD", text.lower())
    out: list[str] = []
    word: list[str] = []
    for ch in folded:
        if ch.isalnum():
            word.append(ch)
        elif unicodedata.category(ch) == "Mn":
            continue  # a combining accent: dropped, the word goes on
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return [t for t in out if len(t.encode("utf-8")) <= _MAX_LEXEME_BYTES]


#: the flat form's bound: PostgreSQL refuses a tsvector literal whose words, counted before it
#: merges repeats, pass 1 MiB; ASCII text this long cannot hold more word bytes than that
_FLAT_MAX_CHARS = 500_000


def tsvector_literal(fields: Iterable[str | None]) -> str:
    """A tsvector (text form) of the fields' tokens with positions, a gap between fields.

    Performance: every audit event on PostgreSQL goes through here (a decision's event holds
    the request's whole context, ~70 words). For ASCII text of ordinary size the literal names
    every word at its position (``'a':1 'b':2 'a':3``) and PostgreSQL's input merges a repeated
    word's positions, keeps the first 256 and clamps past 16383, giving the tsvector the grouped
    form gives (tests/test_pg_fulltext_literal.py compares them on the server); building it
    takes a third less time. Longer or non-ASCII text gets the grouped form."""
    texts = [text for text in fields if text]
    if sum(map(len, texts)) < _FLAT_MAX_CHARS and all(map(str.isascii, texts)):
        return _flat_literal(texts)
    return _grouped_literal(texts)


def _flat_literal(texts: list[str]) -> str:
    parts: list[str] = []
    pos = 1
    for text in texts:
        words = tokens(text)
        if words:
            end = pos + len(words)
            parts.append(" ".join([f"'{w}':{p}" for w, p in zip(words, range(pos, end), strict=True)]))
            pos = end + 1
        else:
            pos += 1
    return " ".join(parts)


def _grouped_literal(texts: list[str]) -> str:
    """Each word once with its positions (at most 256, clamped at PostgreSQL's limit)."""
    positions: dict[str, list[int]] = {}
    pos = 1
    for text in texts:
        words = tokens(text)
        if pos + len(words) > _MAX_POSITION:
            for token in words:
                positions.setdefault(token, []).append(min(pos, _MAX_POSITION))
                pos += 1
        else:
            get = positions.get
            for pos, token in enumerate(words, pos):  # noqa: B020 - pos continues after the loop
                found = get(token)
                if found is None:
                    positions[token] = [pos]
                else:
                    found.append(pos)
            pos += 1 if words else 0
        pos += 1  # the gap: no phrase spans two fields
    return " ".join([f"'{t}':{p[0]}" if len(p) == 1 else f"'{t}':{','.join(map(str, p[:256]))}"
                     for t, p in positions.items()])


def tsquery_literal(phrases: Iterable[str]) -> str | None:
    """The tsquery (text form) for the query's free-text terms, each an FTS5 phrase as the parser
    writes it (``"disk full"``, ``"dep"*``): words of one phrase follow each other (``<->``), a
    trailing ``*`` makes the last word a prefix; all phrases must match. None when no phrase has a
    word (FTS5 would then have no constraint either)."""
    parts: list[str] = []
    for phrase in phrases:
        prefix = phrase.endswith("*")
        body = phrase[:-1] if prefix else phrase
        if body.startswith('"') and body.endswith('"'):
            body = body[1:-1].replace('""', '"')
        words = tokens(body)
        if not words:
            continue
        lexemes = [f"'{w}'" for w in words]
        if prefix:
            lexemes[-1] += ":*"
        parts.append("(" + " <-> ".join(lexemes) + ")")
    return " & ".join(parts) if parts else None
