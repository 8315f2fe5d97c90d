"""Refuses a Lark grammar (GBNF arrives converted to Lark) whose start rule can never finish, e.g.
`start: a` / `a: "x" a`, before llguidance compiles it.

Such a grammar accepts no output at all, and llguidance's first mask for it takes time that grows
with its literals' length (about 0.1 s per character of the recursive literal on a 49k vocabulary:
a 4 KB literal held the compile for minutes, fuzz_structured's finding), while one alternative
that can finish makes it instant. The check is the textbook productivity fixpoint over rules:
a rule is productive when one of its alternatives consists of productive items only; terminals
(strings, regexes, UPPERCASE lexemes, %json/%regex blocks, special tokens) and optional items
(`x?`, `x*`, `[x]`, `x ~ 0..n`) always are. It only ever answers "never finishes" for grammars it
fully understood; anything it cannot read is left to llguidance.
"""
from __future__ import annotations

import re
from typing import Optional

_TOKEN = re.compile(r"""
    (?P<ws>\s+|//[^\n]*)
  | (?P<str>"(?:[^"\\\n]|\\.)*"i?)
  | (?P<regex>/(?:[^/\\\n]|\\.)+/[imslux]*)
  | (?P<special><\[[^\]]*\]>|<\|[^|>]*\|>|<[A-Za-z_][^>\s]*>)
  | (?P<block>%(?:json|regex|lark|llguidance)\s*\{)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>\d+)
  | (?P<op>\.\.|->|[|()\[\]*+?~&,])
""", re.VERBOSE)
_RULE_START = re.compile(r"^[?!]?([A-Za-z_][A-Za-z0-9_]*)(?:\.-?\d+)?(?:\[[^\]\n]*\])?\s*:(?!:)", re.MULTILINE)

_PRODUCTIVE = "\0terminal"  # an atom that always produces a finite string (no token text looks like it)


class _Unsure(Exception):
    """Something this reader does not understand: leave the grammar to llguidance."""


def _tokens(body: str) -> list[str]:
    out, pos = [], 0
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None:
            raise _Unsure(body[pos:pos + 20])
        kind = m.lastgroup
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "block":  # a balanced {...} (JSON may hold braces in strings: skip them)
            depth, i, in_str = 1, pos, False
            while i < len(body) and depth:
                c = body[i]
                if in_str:
                    if c == "\\":
                        i += 1
                    elif c == '"':
                        in_str = False
                elif c == '"':
                    in_str = True
                elif c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                i += 1
            if depth:
                raise _Unsure("unbalanced block")
            pos = i
            out.append(_PRODUCTIVE)
        elif kind in ("str", "regex", "special"):
            out.append(_PRODUCTIVE)
        elif kind == "name":
            out.append(_PRODUCTIVE if m.group().isupper() or not m.group()[0].islower() else m.group())
        else:
            out.append(m.group())
    return out


class _Expr:
    """A parsed rule body: alternatives of sequences of items; an item is a rule name, _PRODUCTIVE
    or a nested _Expr, with whether it may be empty."""

    def __init__(self, toks: list[str], i: int = 0, close: Optional[str] = None) -> None:
        self.alts: list[list[tuple[object, bool]]] = [[]]
        while i < len(toks):
            t = toks[i]
            if t == close:
                self.end = i + 1
                return
            if t in (")", "]"):
                raise _Unsure("unbalanced")
            if t == "|":
                self.alts.append([])
                i += 1
                continue
            if t == "->":  # an alias names the alternative: skip the name
                i += 2
                continue
            if t in ("(", "["):
                inner = _Expr(toks, i + 1, ")" if t == "(" else "]")
                atom, optional, i = inner, t == "[", inner.end
            elif t in ("..",):  # "a".."z": a range of one character
                i += 2
                continue
            elif t == "&":  # lexeme intersection (terminals only): the left lexeme stands
                i += 2
                continue
            elif t in ("*", "+", "?", "~", ",") or t.isdigit():
                raise _Unsure(f"unexpected {t!r}")
            else:
                atom, optional, i = t, False, i + 1
            while i < len(toks) and toks[i] in ("*", "+", "?", "~"):
                op = toks[i]
                i += 1
                if op in ("*", "?"):
                    optional = True
                elif op == "~":  # x ~ n or x ~ n..m
                    if i >= len(toks) or not toks[i].isdigit():
                        raise _Unsure("repetition count")
                    optional = optional or int(toks[i]) == 0
                    i += 1
                    if i + 1 < len(toks) and toks[i] == ".." and toks[i + 1].isdigit():
                        i += 2
            self.alts[-1].append((atom, optional))
        if close is not None:
            raise _Unsure("unclosed group")
        self.end = i

    def productive(self, known: set[str]) -> bool:
        return any(all(optional or _item_productive(atom, known) for atom, optional in alt) for alt in self.alts)


def _item_productive(atom: object, known: set[str]) -> bool:
    if atom == _PRODUCTIVE:
        return True
    if isinstance(atom, _Expr):
        return atom.productive(known)
    return atom in known


def _names(exprs) -> set[str]:
    out: set[str] = set()
    for e in exprs:
        for alt in e.alts:
            for atom, _ in alt:
                if isinstance(atom, _Expr):
                    out |= _names([atom])
                elif atom != _PRODUCTIVE:
                    out.add(str(atom))
    return out


def unfinishable_start(lark: str) -> Optional[str]:
    """The start rule's name when it can never finish (the grammar accepts nothing), else None
    (it can, or the text uses something this reader does not follow)."""
    try:
        starts = list(_RULE_START.finditer(lark))
        rules: dict[str, _Expr] = {}
        for k, m in enumerate(starts):
            end = starts[k + 1].start() if k + 1 < len(starts) else len(lark)
            body = lark[m.end():end]
            body = re.split(r"^\s*%", body, maxsplit=1, flags=re.MULTILINE)[0]  # a directive line ends it
            name = m.group(1)
            if name in rules or not name[0].islower():
                continue  # terminals are lexemes; a second definition: llguidance decides
            rules[name] = _Expr(_tokens(body))
        if "start" not in rules:
            return None
        productive: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, expr in rules.items():
                if name not in productive and expr.productive(productive):
                    productive.add(name)
                    changed = True
        if _names(rules.values()) - set(rules):
            return None  # llguidance reports the undefined rule itself
        return None if "start" in productive else "start"
    except (_Unsure, RecursionError):
        return None
