"""Value formatting and the function table behind ``gotemplate``.

Reproduces Go's ``fmt`` (``%v``, ``Sprint``/``Sprintln``/``Sprintf``),
``encoding/json`` as docker's ``json`` template func uses it, the
text/template builtins and docker's extra funcs (``cli/templates``).
Stdlib only; imports nothing from nsbridge.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any


class _Missing:
    """Go's invalid reflect.Value: what a missing map key evaluates to."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class FuncError(Exception):
    """A function failed; reported as ``error calling NAME: msg`` (Go's wording)."""


class ArgError(Exception):
    """Bad argument type or count; reported verbatim, as Go's evalCall does."""


#: the longest text a template may make, in all or in one value: a --format line
#: has no use for more, and a bigger one is memory and minutes (Go's own fmt stops
#: widths and precisions at ~1e7, see _go_num, but not what templates multiply)
MAX_TEXT = 16 << 20
#: the most items one function may make (`split`)
MAX_ITEMS = 1 << 20


class LimitError(Exception):
    """A template wants more than a --format may cost; reported verbatim."""


def check_size(n: int) -> None:
    if n > MAX_TEXT:
        raise LimitError(f"exceeded maximum template output ({MAX_TEXT >> 20} MiB)")


def go_type(v: object) -> str:
    """Name of the Go type a JSON-decoded value would have (for error text)."""
    if v is None or v is MISSING:
        return "<nil>"
    for py, name in ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string")):
        if isinstance(v, py):
            return name
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    return type(v).__name__


def truth(v: object) -> bool:
    """Go's template isTrue: zero values and empty containers are false."""
    if v is None or v is MISSING:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, Mapping)):
        return bool(v)
    return True


def sorted_keys(m: Mapping) -> list:
    # Go's fmt and range both visit maps in sorted key order.
    def key(k: object) -> tuple:
        if isinstance(k, str):
            return (0, k, 0)
        if isinstance(k, (int, float)):
            return (1, "", k)
        return (2, str(k), 0)
    return sorted(m, key=key)


# ---- floats -----------------------------------------------------------------

def _digits(f: float) -> tuple[str, int]:
    """Shortest round-trip digits and decimal-point position (Go's decimalSlice)."""
    t = Decimal(repr(abs(f))).as_tuple()
    digs = "".join(map(str, t.digits))
    dp = len(digs) + int(t.exponent)
    stripped = digs.lstrip("0")
    dp -= len(digs) - len(stripped)
    return stripped.rstrip("0") or "0", dp


def go_float(f: float, json: bool = False) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64) as fmt's %v uses it; json=True gives encoding/json's form."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    if f == 0:
        return sign + "0"
    digs, dp = _digits(f)
    exp = dp - 1
    # %v switches to exponent form at exp >= 6; encoding/json (ES6 rules) at 1e21.
    e_form = (abs(f) < 1e-6 or abs(f) >= 1e21) if json else (exp < -4 or exp >= 6)
    if e_form:
        mant = digs[0] + ("." + digs[1:] if len(digs) > 1 else "")
        es = f"{abs(exp)}" if json else f"{abs(exp):02d}"
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{es}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digs}"
    if dp >= len(digs):
        return sign + digs + "0" * (dp - len(digs))
    return f"{sign}{digs[:dp]}.{digs[dp:]}"


# ---- %v / Sprint ------------------------------------------------------------

def fmt_v(v: object) -> str:
    """Go's fmt %v for JSON-like values (slices as [a b], maps as map[k:v] sorted)."""
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{fmt_v(k)}:{fmt_v(v[k])}" for k in sorted_keys(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(fmt_v(x) for x in v) + "]"
    return str(v)


def _joined(parts: list[str], sep: str = "") -> str:
    """SEP.join(PARTS), refused before it is made if too long."""
    check_size(sum(map(len, parts)) + len(sep) * max(len(parts) - 1, 0))
    return sep.join(parts)


def go_sprint(*args: object) -> str:
    # fmt.Sprint adds a space between operands only when neither is a string.
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(fmt_v(a))
    return _joined(out)


def go_sprintln(*args: object) -> str:
    return _joined([fmt_v(a) for a in args], " ") + "\n"


_SHORT = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v"}


def go_quote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _SHORT:
            out.append(_SHORT[ch])
        elif ch.isprintable() and not 0xD800 <= o <= 0xDFFF:
            out.append(ch)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        else:
            out.append(f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return "".join(out) + '"'


# ---- Sprintf ----------------------------------------------------------------

_SPEC = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d*))?(.?)", re.S)


def _pad(s: str, flags: str, width: str) -> str:
    w = int(width or 0)
    return s.ljust(w) if "-" in flags else s.rjust(w)


def _fmt_arg(flags: str, width: str, prec: str | None, verb: str, a: object) -> str:
    if verb == "T":
        return _pad(go_type(a), flags, width)
    if isinstance(a, (list, tuple)):  # fmt applies the verb element-wise
        return "[" + _bounded(_fmt_arg(flags, width, prec, verb, x) for x in a) + "]"
    if isinstance(a, Mapping):
        return "map[" + _bounded(
            f"{_fmt_arg(flags, width, prec, verb, k)}:{_fmt_arg(flags, width, prec, verb, a[k])}"
            for k in sorted_keys(a)) + "]"
    spec = "%" + flags + width + ("" if prec is None else "." + prec)
    if a is None or a is MISSING:
        return _pad("<nil>", flags, width) if verb == "v" else f"%!{verb}(<nil>)"
    if isinstance(a, str):
        if verb in "sv":
            return _pad(a if prec is None else a[: int(prec or 0)], flags, width)
        if verb == "q":
            return _pad(go_quote(a), flags, width)
        if verb in "xX":
            h = a.encode().hex()
            return _pad(h.upper() if verb == "X" else h, flags, width)
    elif isinstance(a, bool):
        if verb in "tv":
            return _pad(fmt_v(a), flags, width)
    elif isinstance(a, int):
        if verb in "dxXo" or verb == "v":
            return (spec + ("d" if verb == "v" else verb)) % a
        if verb == "b":
            return _pad(format(a, "b"), flags, width)
        if verb == "c":
            return _pad(chr(a), flags, width)
        if verb == "q":
            return _pad("'" + go_quote(chr(a))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'", flags, width)
    elif isinstance(a, float):
        if verb in "vgG" and prec is None:
            s = go_float(a)
            return _pad(("+" + s if "+" in flags and a >= 0 else s).upper() if verb == "G" else s, flags, width)
        if verb in "eEfFgGv":
            return (spec + ("g" if verb == "v" else verb)) % a
    elif verb == "v":
        return _pad(fmt_v(a), flags, width)
    return f"%!{verb}({go_type(a)}={fmt_v(a)})"


def _bounded(parts: Iterable[str], sep: str = " ") -> str:
    """SEP.join(PARTS) of parts made one by one, stopped as soon as too long."""
    out, n = [], 0
    for p in parts:
        n += len(p) + len(sep)
        check_size(n)
        out.append(p)
    return sep.join(out)


def _go_num(digits: str) -> int | None:
    """fmt's parsenum: None where Go gives up on "a crazy long number" (past
    1e6 before the last digit), which ends the format with %!(NOVERB)."""
    num = 0
    for d in digits:
        if num > 1_000_000:
            return None
        num = num * 10 + ord(d) - 48
    return num


def go_sprintf(fmt: str, *args: object) -> str:
    """fmt.Sprintf for the common verbs (v s d q t x X o b c e f g); Go's %!verb(...) error forms."""
    out, ai, pos, n = [], 0, 0, 0
    for m in _SPEC.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if _go_num(width) is None or (prec and _go_num(prec) is None):
            out.append("%!(NOVERB)")  # Go's parsenum skipped to the end of the format
            pos = len(fmt)
            break
        if verb == "%":
            out.append("%")
        elif not verb:
            out.append("%!(NOVERB)")
        elif ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(_fmt_arg(flags, width, prec, verb, args[ai]))
            ai += 1
        n += len(out[-1]) + len(out[-2])
        check_size(n)
    out.append(fmt[pos:])
    if ai < len(args):
        extra = ", ".join("<nil>" if a is None else f"{go_type(a)}={fmt_v(a)}" for a in args[ai:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


# ---- encoding/json ----------------------------------------------------------

_JSON_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
             "\u2028": "\\u2028", "\u2029": "\\u2029", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_JSON_RE = re.compile('["\\\\\x00-\x1f\u2028\u2029\ud800-\udfff]')
_JSON_RE_HTML = re.compile('["\\\\\x00-\x1f\u2028\u2029\ud800-\udfff<>&]')


def _json_char(m: re.Match) -> str:
    c = m.group()
    if "\ud800" <= c <= "\udfff":
        return "\ufffd"  # Go replaces invalid UTF-8 with U+FFFD
    return _JSON_ESC.get(c) or f"\\u{ord(c):04x}"


def go_json(v: object, escape_html: bool = False) -> str:
    """Compact encoding/json output. Dicts keep insertion order (docker marshals
    structs in field order); escape_html=True gives json.Marshal's \\u003c style."""
    if v is None or v is MISSING:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise FuncError(f"json: unsupported value: {go_float(v)}")
        return go_float(v, json=True)
    if isinstance(v, str):
        return '"' + (_JSON_RE_HTML if escape_html else _JSON_RE).sub(_json_char, v) + '"'
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{go_json(str(k), escape_html)}:{go_json(x, escape_html)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(go_json(x, escape_html) for x in v) + "]"
    return go_json(str(v), escape_html)


def _docker_json(v: object) -> str:
    # docker's func ignores Encode errors, leaving an empty buffer.
    try:
        return go_json(v)
    except FuncError:
        return ""


# ---- builtins ---------------------------------------------------------------

def _int_arg(v: object, what: str = "int") -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if v is None:
        raise ArgError(f"invalid value; expected {what}")
    raise ArgError(f"wrong type for value; expected {what}; got {go_type(v)}")


def _str_arg(v: object) -> str:
    if isinstance(v, str):
        return v
    if v is None:
        raise ArgError("invalid value; expected string")
    raise ArgError(f"wrong type for value; expected string; got {go_type(v)}")


def _len(v: object) -> int:
    if v is None:
        raise FuncError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode())  # Go's len counts bytes
    if isinstance(v, (list, tuple, Mapping)):
        return len(v)
    raise FuncError(f"len of type {go_type(v)}")


def _index(item: object, *keys: object) -> object:
    for k in keys:
        if item is None or item is MISSING:
            raise FuncError("index of untyped nil")
        if isinstance(item, Mapping):
            if not isinstance(k, str) and item and isinstance(next(iter(item)), str):
                raise FuncError(f"value has type {go_type(k)}; should be string")
            item = item.get(k, MISSING)
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(k, int) or isinstance(k, bool):
                raise FuncError(f"cannot index slice/array with type {go_type(k)}")
            seq = item.encode() if isinstance(item, str) else item
            if not 0 <= k < len(seq):
                raise FuncError(f"index out of range: {k}")
            item = seq[k]
        else:
            raise FuncError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: object, *idx: object) -> object:
    if item is None:
        raise FuncError("slice of untyped nil")
    if len(idx) > 3:
        raise FuncError(f"too many slice indexes: {len(idx)}")
    if isinstance(item, str):
        if len(idx) == 3:
            raise FuncError("cannot 3-index slice a string")
        seq: Any = item.encode()
    elif isinstance(item, (list, tuple)):
        seq = list(item)
    else:
        raise FuncError(f"can't slice item of type {go_type(item)}")
    bounds = [0, len(seq), len(seq)]
    for i, x in enumerate(idx):
        bounds[i] = _int_arg(x)
        if not 0 <= bounds[i] <= len(seq):
            raise FuncError(f"index out of range: {bounds[i]}")
    if bounds[0] > bounds[1]:
        raise FuncError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    if len(idx) == 3 and bounds[1] > bounds[2]:
        raise FuncError(f"invalid slice index: {bounds[1]} > {bounds[2]}")
    out = seq[bounds[0] : bounds[1]]
    return out.decode(errors="replace") if isinstance(out, bytes) else out


def _kind(v: object) -> str:
    # Go's basicKind; ints and floats share a kind here (pragmatic: JSON numbers).
    if v is None or v is MISSING:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    return "str" if isinstance(v, str) else "other"


def _eq(a: object, *bs: object) -> bool:
    if not bs:
        raise FuncError("missing argument for comparison")
    for b in bs:
        ka, kb = _kind(a), _kind(b)
        if ka != kb:
            if "nil" not in (ka, kb):
                raise FuncError("incompatible types for comparison")
            continue  # nil vs non-nil: simply unequal
        if ka == "nil":
            return True
        if isinstance(a, (list, tuple, Mapping)) or isinstance(b, (list, tuple, Mapping)):
            raise FuncError(f"non-comparable type {fmt_v(b)}: {go_type(b)}")
        if a == b:
            return True
    return False


def _lt(a: object, b: object) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka not in ("num", "str") or kb not in ("num", "str"):
        raise FuncError("invalid type for comparison")
    if ka != kb:
        raise FuncError("incompatible types for comparison")
    return a < b  # type: ignore[operator]


def _html(*args: object) -> str:
    s = args[0] if len(args) == 1 and isinstance(args[0], str) else go_sprint(*args)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("'", "&#39;"), ("\0", "\ufffd")):
        s = s.replace(a, b)
    return s


def _js(*args: object) -> str:
    s = args[0] if len(args) == 1 and isinstance(args[0], str) else go_sprint(*args)
    out = []
    for c in s:
        if c in "\\'\"":
            out.append("\\" + c)
        elif c in "<>&=" or not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args: object) -> str:
    s = args[0] if len(args) == 1 and isinstance(args[0], str) else go_sprint(*args)
    return urllib.parse.quote_plus(s, safe="")


# ---- docker's funcs (cli/templates/templates.go) ----------------------------

def _case(s: object, conv: Callable[[str], str]) -> str:
    # Go maps rune by rune (simple case mapping): never grows a rune into two.
    return "".join(c2 if len(c2 := conv(c)) == 1 else c for c in _str_arg(s))


def _title(s: object) -> str:
    """strings.Title: upper-case the first letter after a separator."""
    out, prev = [], " "
    for c in _str_arg(s):
        sep = (not (prev.isalnum() or prev == "_")) if prev < "\x80" else prev.isspace()
        out.append(_case(c, str.upper) if sep else c)
        prev = c
    return "".join(out)


def _join(elems: object, sep: object) -> str:
    # Go requires []string; JSON lists are []interface{}, so format each element with %v.
    if not isinstance(elems, (list, tuple)):
        raise ArgError(f"wrong type for value; expected []string; got {go_type(elems)}")
    return _joined([fmt_v(e) for e in elems], _str_arg(sep))


def _split(s: object, sep: object) -> list[str]:
    s, sep = _str_arg(s), _str_arg(sep)
    if (len(s) if sep == "" else s.count(sep) + 1) > MAX_ITEMS:
        raise LimitError(f"exceeded maximum template items ({MAX_ITEMS})")
    return list(s) if sep == "" else s.split(sep)


def _truncate(s: object, n: object) -> str:
    s, n = _str_arg(s), _int_arg(n)
    if n < 0:
        raise FuncError("runtime error: slice bounds out of range")
    return s if len(s) < n else s[:n]


def _padfn(s: object, left: object, right: object) -> str:
    s, left, right = _str_arg(s), _int_arg(left), _int_arg(right)
    if left < 0 or right < 0:
        raise FuncError("strings: negative Repeat count")
    check_size(left + len(s) + right)
    return s if s == "" else " " * left + s + " " * right


# name -> (callable, min args, max args or None for variadic).  and/or are
# listed so the parser knows them; the executor evaluates them lazily.
FUNCS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "and": (lambda *a: a[-1], 1, None),
    "or": (lambda *a: a[-1], 1, None),
    "not": (lambda v: not truth(v), 1, 1),
    "len": (_len, 1, 1),
    "index": (_index, 1, None),
    "slice": (_slice, 1, None),
    "print": (go_sprint, 0, None),
    "printf": (lambda f, *a: go_sprintf(_str_arg(f), *a), 1, None),
    "println": (go_sprintln, 0, None),
    "eq": (_eq, 1, None),
    "ne": (lambda a, b: not _eq(a, b), 2, 2),
    "lt": (_lt, 2, 2),
    "le": (lambda a, b: _lt(a, b) or _eq(a, b), 2, 2),
    "gt": (lambda a, b: not (_lt(a, b) or _eq(a, b)), 2, 2),
    "ge": (lambda a, b: not _lt(a, b), 2, 2),
    "html": (_html, 0, None),
    "js": (_js, 0, None),
    "urlquery": (_urlquery, 0, None),
    "json": (_docker_json, 1, 1),
    "split": (_split, 2, 2),
    "join": (_join, 2, 2),
    "title": (_title, 1, 1),
    "lower": (lambda s: _case(s, str.lower), 1, 1),
    "upper": (lambda s: _case(s, str.upper), 1, 1),
    "pad": (_padfn, 3, 3),
    "truncate": (_truncate, 2, 2),
}

# docker's HeaderFunctions: for the table header row the column titles pass
# through unchanged (pad is deliberately not overridden, to keep alignment).
HEADER_FUNCS = dict(FUNCS)
HEADER_FUNCS.update({
    name: (lambda v, *_: v, n, n)
    for name, n in (("json", 1), ("split", 2), ("join", 2), ("title", 1), ("lower", 1), ("upper", 1), ("truncate", 2))
})
