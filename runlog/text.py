"""Text that is safe to show: names and messages without control characters.

Object names, task names and error messages come from parameters, files and
servers that an attacker may write to. A list named ``"\\x1b[2J\\x1b[31mOK"`` would
clear the admin's terminal and paint the row; a BiDi override would show a name
reversed. The views therefore drop, from every text they show:

- ANSI escape sequences whole (CSI such as ``ESC [ 31 m``, OSC such as a window title
  or hyperlink ``ESC ] ... BEL``, and two-character escapes), so no ``[31m`` is left;
- the other C0 and C1 control characters and DEL (tabs and line breaks become a
  space);
- the Unicode BiDi embedding, override and isolate controls.

Rich markup is a separate matter: the table renders cells as plain text.
"""

from __future__ import annotations

import re

__all__ = ["clean"]

# ESC (or the 8-bit CSI/OSC/DCS introducers) and what the sequence runs to.
_ESCAPES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]            # CSI ... final byte
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])   # OSC, DCS, SOS, PM, APC ...
      .*?(?:\x07|\x1b\\|\x9c|$)                 # ... to BEL or ST (or the end)
    | \x1b[ -/]*[0-~]?                          # other escapes: ESC (intermediates) final
    """,
    re.VERBOSE | re.DOTALL,
)
_SPACES = re.compile(r"[\t\n\v\f\r]+")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(text: str) -> str:
    """``text`` without escape sequences and control characters (see the module)."""
    if text.isprintable():  # the common case: nothing to do
        return text
    text = _ESCAPES.sub("", text)
    text = _SPACES.sub(" ", text)
    return _CONTROLS.sub("", text)
