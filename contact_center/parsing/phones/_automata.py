"""Deterministic automata over ASCII digits, compiled from regular expressions.

Private to :mod:`contact_center.parsing.phones`. Every number the fast path matches is a
string of ASCII digits, and every pattern of phonenumbers' metadata is a regular
expression over digits (literals, classes, alternation, repetition: checked when
compiled). So a set of patterns compiles to one deterministic automaton (a Thompson
NFA, then the subset construction), which numpy runs over whole arrays a digit
position at a time: a few array operations per digit instead of one regex engine
call per pattern. It decides exactly what the regex decides: ``fullmatch`` is "the
whole string is in the pattern's language" and ``match`` is "some prefix is".
``tests/test_phones.py`` checks each automaton against ``re`` for every pattern of
the metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa

from contact_center.parsing.arrow_text import string_bytes

_DIGITS = 10
_END = 10  # the symbol after a number's last digit: every state stays where it is
_OTHER = 11  # a byte that is not an ASCII digit: no pattern matches one
_SYMBOLS = (*range(_DIGITS), _OTHER)  # what a number's byte can be; a move's mask bits
_ALL_DIGITS = (1 << _DIGITS) - 1
_ANYTHING = _ALL_DIGITS | 1 << _OTHER
# An automaton with more states than this is not built (the regex engine is used).
_MAX_STATES = 20_000


class _NotDigitPattern(Exception):
    """A pattern uses syntax (or matches characters) outside what automata here handle."""


# A parsed pattern: ("digits", mask) | ("sequence", [node...]) | ("either", [node...])
# | ("repeat", (low, high or None, node)). A mask has bit d set when digit d matches.
_Node = tuple[str, Any]


class _PatternParser:
    """Parses the regular expressions of phonenumbers' metadata over digits.

    The syntax they use: digits, ``\\d``, classes of digits and ranges, groups
    (``(?:...)`` or ``(...)``), ``|`` and the quantifiers ``? * + {n} {n,} {n,m}``.
    Anything else raises :class:`_NotDigitPattern`.
    """

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0

    def parse(self) -> _Node:
        node = self.either()
        if self.at != len(self.text):
            raise _NotDigitPattern(f"unexpected {self.text[self.at :]!r} in {self.text!r}")
        return node

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self, expected: str) -> None:
        if not self.text.startswith(expected, self.at):
            raise _NotDigitPattern(f"expected {expected!r} at {self.at} in {self.text!r}")
        self.at += len(expected)

    def either(self) -> _Node:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.at += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else ("either", branches)

    def sequence(self) -> _Node:
        items = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.repeated(self.atom()))
        return ("sequence", items)

    def atom(self) -> _Node:
        char = self.peek()
        if char == "(":
            self.at += 1
            if self.text.startswith("?:", self.at):
                self.at += 2
            node = self.either()
            self.take(")")
            return node
        if char == "[":
            return ("digits", self.digit_class())
        if char == "\\":
            self.take("\\d")
            return ("digits", _ALL_DIGITS)
        if char.isascii() and char.isdigit():
            self.at += 1
            return ("digits", 1 << int(char))
        raise _NotDigitPattern(f"unexpected {char!r} at {self.at} in {self.text!r}")

    def digit_class(self) -> int:
        self.take("[")
        mask = 0
        while self.peek() != "]":
            if self.text.startswith("\\d", self.at):
                self.at += 2
                mask = _ALL_DIGITS
                continue
            low = self.class_digit()
            high = low
            if self.peek() == "-" and self.text[self.at + 1 : self.at + 2] != "]":
                self.at += 1
                high = self.class_digit()
            if high < low:
                raise _NotDigitPattern(f"bad range in {self.text!r}")
            mask |= sum(1 << d for d in range(low, high + 1))
        self.take("]")
        return mask

    def class_digit(self) -> int:
        char = self.peek()
        if not (char.isascii() and char.isdigit()):
            raise _NotDigitPattern(f"unexpected {char!r} in a class in {self.text!r}")
        self.at += 1
        return int(char)

    def repeated(self, node: _Node) -> _Node:
        while True:
            char = self.peek()
            if char == "?":
                low, high = 0, 1
            elif char == "*":
                low, high = 0, None
            elif char == "+":
                low, high = 1, None
            elif char == "{":
                close = self.text.find("}", self.at)
                bounds = self.text[self.at + 1 : close].split(",") if close > 0 else []
                if not 1 <= len(bounds) <= 2 or not all(b.isdigit() for b in bounds[:1]):
                    raise _NotDigitPattern(f"bad repetition in {self.text!r}")
                if len(bounds) == 2 and bounds[1] and not bounds[1].isdigit():
                    raise _NotDigitPattern(f"bad repetition in {self.text!r}")
                low = int(bounds[0])
                high = low if len(bounds) == 1 else int(bounds[1]) if bounds[1] else None
                self.at = close
            else:
                return node
            self.at += 1
            if self.peek() in ("?", "+"):
                raise _NotDigitPattern(f"lazy or possessive repetition in {self.text!r}")
            node = ("repeat", (low, high, node))


class _Nfa:
    """A Thompson automaton: per state, digit moves (a 10-bit mask, target) and empty moves."""

    def __init__(self) -> None:
        self.moves: list[list[tuple[int, int]]] = []
        self.empty: list[list[int]] = []

    def state(self) -> int:
        self.moves.append([])
        self.empty.append([])
        return len(self.moves) - 1

    def add(self, node: _Node, start: int) -> int:
        """Add a parsed pattern after ``start``; return the state where it ends."""
        kind, value = node
        if kind == "digits":
            end = self.state()
            self.moves[start].append((value, end))
            return end
        if kind == "sequence":
            for item in value:
                start = self.add(item, start)
            return start
        if kind == "either":
            end = self.state()
            for branch in value:
                begin = self.state()
                self.empty[start].append(begin)
                self.empty[self.add(branch, begin)].append(end)
            return end
        low, high, item = value
        for _ in range(low):
            start = self.add(item, start)
        if high is None:
            loop = self.state()
            self.empty[start].append(loop)
            self.empty[self.add(item, loop)].append(loop)
            return loop
        for _ in range(high - low):
            skip = self.state()
            self.empty[start].append(skip)
            self.empty[self.add(item, start)].append(skip)
            start = skip
        return start


@dataclass(frozen=True)
class _Automaton:
    """A deterministic automaton over ASCII digits that runs several patterns at once.

    Attributes:
        table: the next state by state and symbol (the digits, then _END, then _OTHER);
            state 0 is the dead state, state 1 the start.
        accepts: ``accepts[state, i]``: pattern ``i`` matches a string that ends in ``state``.
    """

    table: np.ndarray
    accepts: np.ndarray

    def run(self, numbers: pa.StringArray) -> np.ndarray:
        """The state each number ends in."""
        offsets, data = string_bytes(numbers)
        starts, lengths = offsets[:-1], offsets[1:] - offsets[:-1]
        state = np.ones(len(numbers), dtype=np.intp)
        if len(data) == 0:
            return state
        symbols = data - np.uint8(ord("0"))
        if (symbols >= _DIGITS).any():
            symbols = np.where(symbols < _DIGITS, symbols, np.uint8(_OTHER))
        flat = self.table.ravel()
        width = self.table.shape[1]
        longest = int(lengths.max())
        if (lengths == longest).all():
            # All of one length (the common case): the symbols are a matrix's rows.
            matrix = symbols.reshape(len(numbers), longest)
            for position in range(longest):
                state = flat[state * width + matrix[:, position]]
            return state
        last = len(data) - 1
        for position in range(longest):
            symbol = np.where(
                lengths > position, symbols[np.minimum(starts + position, last)], _END
            )
            state = flat[state * width + symbol]
        return state


@cache
def _automaton(patterns: tuple[tuple[str, bool], ...]) -> _Automaton | None:
    """An automaton for ``(pattern, prefix)`` pairs: ``fullmatch``, or ``match`` when prefix.

    None when a pattern is not over digits only or the automaton would be too large.
    """
    nfa = _Nfa()
    start = nfa.state()
    accepting: dict[int, list[int]] = {}
    try:
        for index, (pattern, prefix) in enumerate(patterns):
            begin = nfa.state()
            nfa.empty[start].append(begin)
            end = nfa.add(_PatternParser(pattern).parse(), begin)
            if prefix:
                nfa.moves[end].append((_ANYTHING, end))  # anything may follow
            accepting.setdefault(end, []).append(index)
    except _NotDigitPattern:
        return None
    closures: dict[int, frozenset[int]] = {}

    def closure(state: int) -> frozenset[int]:
        found = closures.get(state)
        if found is None:
            seen, todo = {state}, [state]
            while todo:
                for target in nfa.empty[todo.pop()]:
                    if target not in seen:
                        seen.add(target)
                        todo.append(target)
            # Only states that move or accept tell two sets apart.
            found = frozenset(s for s in seen if nfa.moves[s] or s in accepting)
            closures[state] = found
        return found

    dead: frozenset[int] = frozenset()
    sets = [dead, closure(start)]
    number = {dead: 0, sets[1]: 1}
    rows = [[0] * (_OTHER + 1)]
    while len(rows) < len(sets):
        if len(sets) > _MAX_STATES:
            return None
        current = sets[len(rows)]
        targets: dict[int, set[int]] = {symbol: set() for symbol in _SYMBOLS}
        for state in current:
            for mask, target in nfa.moves[state]:
                reached = closure(target)
                for symbol in _SYMBOLS:
                    if mask >> symbol & 1:
                        targets[symbol] |= reached
        row = [0] * (_OTHER + 1)
        row[_END] = len(rows)  # after the end, a number stays where it is
        for symbol, symbol_targets in targets.items():
            key = frozenset(symbol_targets)
            if key not in number:
                number[key] = len(sets)
                sets.append(key)
            row[symbol] = number[key]
        rows.append(row)
    accepts = np.zeros((len(sets), len(patterns)), dtype=bool)
    for index, states in enumerate(sets):
        for state in states:
            accepts[index, accepting.get(state, [])] = True
    return _Automaton(table=np.array(rows, dtype=np.intp), accepts=accepts)
