"""Go text/template: the subset docker's ``--format`` flag uses.

Job: compile a docker-style format string once (``compile_template``) and
execute it against JSON-like data (dicts with CamelCase keys, lists, str,
int, float, bool, None), printing values the way Go's ``fmt`` would; plus
the docker formatter's pre-processing helpers (``is_table``,
``strip_table``, ``docker_preprocess``).  Stdlib only: it imports nothing
from nsbridge except its sibling ``gotemplate_funcs`` (formatting, json,
function table).

Where JSON-like data cannot say what Go's typed structs would do:
- a missing map key prints ``<no value>`` (Go's map[string]interface{});
  so does a field of a missing value, and a field of None (Go would
  raise "nil pointer evaluating" there; printing is kinder to scripts);
- a present None prints ``<nil>``;
- ``missingkey="error"`` (docker inspect's raw-map fallback) turns both
  into errors, with Go's messages.
Not supported: define/template/block, method calls, ``call``, printf
argument indexes (``%[1]d``) and ``*`` widths.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from nsbridge.record import record

from .gotemplate_funcs import (
    FUNCS,
    HEADER_FUNCS,
    MAX_TEXT,
    MISSING,
    ArgError,
    FuncError,
    LimitError,
    check_size,
    fmt_v,
    go_quote,
    go_type,
    sorted_keys,
    truth,
)

__all__ = ["TemplateError", "Template", "compile_template", "render",
           "is_table", "strip_table", "docker_preprocess", "MISSING"]


class TemplateError(ValueError):
    """Bad template or failed execution; one line, worded like Go's errors."""


#: nesting of controls ({{if}}/{{with}}/{{range}}, each {{else if}} too) and of
#: parentheses, together. Go stops parentheses at 10000 ("max expression depth
#: exceeded") and lets goroutine stacks grow for the rest; Python's stack does
#: not grow, so one smaller bound covers every recursion, parsing and executing.
MAX_DEPTH = 100
#: steps one execution may take (nodes walked, range iterations, calls, and
#: one per 256 bytes of text a function makes): a row of `ps` takes tens,
#: `inspect` of a container with 5,000 ports ~50,000
MAX_STEPS = 1_000_000


class _PErr(Exception):
    def __init__(self, pos: int, msg: str) -> None:
        super().__init__(msg)
        self.pos, self.msg = pos, msg


# ---- lexer ------------------------------------------------------------------

_SPACE = " \t\r\n"
_KEYWORDS = frozenset("if else end range with break continue define template block".split())
_NUM_RE = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+"
                     r"|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)")
_WORD_RE = re.compile(r"\w+")
_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


@record(slots=True)
class _Tok:
    kind: str  # field dot var ident kw str num bool nil ( ) | , := = eoa
    val: Any
    pos: int
    end: int
    sp: bool  # preceded by whitespace: separates operands, so `.A .B` != `.A.B`


def _unquote(body: str, q: str) -> str:
    """strconv.Unquote of a "..." or '...' body."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        e = body[i + 1 : i + 2]
        if c != "\\":
            out.append(c)
            i += 1
        elif e in _ESC or e == q:
            out.append(_ESC.get(e, e))
            i += 2
        elif e and e in "xuU":
            h = body[i + 2 : i + 2 + (n := {"x": 2, "u": 4, "U": 8}[e])]
            if len(h) != n:
                raise ValueError
            out.append(chr(int(h, 16)))  # ValueError on bad hex
            i += 2 + n
        elif len(o := body[i + 1 : i + 4]) == 3 and all(x in "01234567" for x in o):
            out.append(chr(int(o, 8)))
            i += 4
        else:
            raise ValueError
    return "".join(out)


def _number(text: str) -> int | float:
    s = text.replace("_", "")
    body = s.lstrip("+-")
    if body[:2].lower() in ("0x", "0b", "0o"):
        return int(s, 0)
    if any(c in body for c in ".eE"):
        return float(s)
    return int(s, 8) if len(body) > 1 and body[0] == "0" else int(s)  # Go: 017 is octal


def _lex_action(src: str, i: int) -> tuple[list[_Tok], int, bool]:
    """Tokens of one action starting after '{{'; returns (tokens, index after '}}', right-trim)."""
    toks, n, start = [], len(src), i
    while True:
        j = i
        while i < n and src[i] in _SPACE:
            i += 1
        sp = i > j
        if i >= n:
            raise _PErr(start, "unclosed action")
        if src.startswith("}}", i):
            return toks, i + 2, False
        if sp and src.startswith("-}}", i):
            return toks, i + 3, True
        c, nxt = src[i], src[i + 1 : i + 2]
        if c in "\"'":
            k = i + 1
            while k < n and src[k] not in (c, "\n"):
                k += 2 if src[k] == "\\" else 1
            if k >= n or src[k] != c:
                raise _PErr(i, "unterminated quoted string" if c == '"' else "unterminated character constant")
            try:
                val = _unquote(src[i + 1 : k], c)
            except ValueError:
                raise _PErr(i, f"invalid syntax: {src[i:k + 1]}") from None
            if c == "'":
                if len(val) != 1:
                    raise _PErr(i, f"malformed character constant: {src[i:k + 1]}")
                kind, val = "num", ord(val)
            else:
                kind = "str"
            end = k + 1
        elif c == "`":
            end = src.find("`", i + 1) + 1
            if not end:
                raise _PErr(i, "unterminated raw quoted string")
            kind, val = "str", src[i + 1 : end - 1].replace("\r", "")  # Go drops \r in raw strings
        elif c == "$":
            m = _WORD_RE.match(src, i + 1)
            end = m.end() if m else i + 1
            kind, val = "var", src[i:end]
        elif c == "." and not nxt.isdigit():
            m = _WORD_RE.match(src, i + 1)
            kind, val, end = ("field", m.group(), m.end()) if m else ("dot", ".", i + 1)
        elif c.isdigit() or c == "." or (c in "+-" and nxt and (nxt.isdigit() or nxt == ".")):
            m = _NUM_RE.match(src, i)
            end = m.end() if m else i + 1
            try:
                if not m or (end < n and (src[end].isalnum() or src[end] in "._")):
                    raise ValueError
                kind, val = "num", _number(m.group())
            except ValueError:
                bad = re.match(r"[\w.]*", src[end:]).group()  # type: ignore[union-attr]
                raise _PErr(i, f"bad number syntax: {go_quote(src[i:end] + bad)}") from None
        elif c.isalpha() or c == "_":
            m = _WORD_RE.match(src, i)
            end, w = m.end(), m.group()  # type: ignore[union-attr]
            kind, val = (("bool", w == "true") if w in ("true", "false") else ("nil", None) if w == "nil"
                         else ("kw", w) if w in _KEYWORDS else ("ident", w))
        elif src.startswith(":=", i):
            kind, val, end = ":=", ":=", i + 2
        elif c in "=()|,":
            kind, val, end = c, c, i + 1
        else:
            raise _PErr(i, f"bad character U+{ord(c):04X} {c!r}")
        toks.append(_Tok(kind, val, i, end, sp))
        i = end


def _scan(src: str) -> list[tuple[str, Any, int]]:
    """Split the source into ("text", str, pos) and ("action", tokens, pos), applying trim markers."""
    items: list[tuple[str, Any, int]] = []
    i, n, trim_next = 0, len(src), False
    while True:
        j = src.find("{{", i)
        text, k = (src[i:] if j < 0 else src[i:j]), j + 2
        if trim_next:
            text = text.lstrip(_SPACE)
        if j >= 0 and src.startswith("-", k) and src[k + 1 : k + 2] in tuple(_SPACE):
            text, k = text.rstrip(_SPACE), k + 2  # "{{- " trims the text before it
        if text:
            items.append(("text", text, i))
        if j < 0:
            return items
        if src.startswith("/*", k):
            e = src.find("*/", k + 2)
            if e < 0:
                raise _PErr(j, "unclosed comment")
            if src.startswith("}}", e + 2):
                i, trim_next = e + 4, False
            elif src[e + 2 : e + 3] in tuple(_SPACE) and src.startswith("-}}", e + 3):
                i, trim_next = e + 6, True
            else:
                raise _PErr(j, "comment ends before closing delimiter")
            continue
        toks, i, trim_next = _lex_action(src, k)
        items.append(("action", toks, j))


# ---- parse tree -------------------------------------------------------------

@record(slots=True)
class _Arg:
    kind: str  # field (chain on dot) | var | func | lit | sub (parenthesised pipe)
    val: Any
    chain: tuple[str, ...]
    pos: int
    src: str


@record(slots=True)
class _Cmd:
    args: list[_Arg]
    pos: int
    src: str


@record(slots=True)
class _Pipe:
    decl: list[str]
    assign: bool  # `$x = ...` rather than `$x := ...`
    cmds: list[_Cmd]


@record(slots=True)
class _Node:
    kind: str  # text | action | if | with | range | break | continue
    val: Any = None  # text, or the pipeline
    body: list[_Node] | None = None
    else_: list[_Node] | None = None


class _Stream:
    def __init__(self, toks: list[_Tok], pos: int) -> None:
        self.toks, self.p = toks, 0
        end = toks[-1].end if toks else pos
        self.eoa = _Tok("eoa", "}}", end, end, True)

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[self.p + k] if self.p + k < len(self.toks) else self.eoa

    def next(self) -> _Tok:
        t = self.peek()
        self.p += 1
        return t


class _Parser:
    def __init__(self, src: str, funcs: Mapping[str, Any]) -> None:
        self.src, self.funcs, self.items, self.i = src, funcs, _scan(src), 0
        self.vars, self.depth = ["$"], 0  # declared variable names; range nesting for break
        self.nest = 0  # controls and parentheses open: MAX_DEPTH

    def deeper(self, pos: int) -> None:
        self.nest += 1
        if self.nest > MAX_DEPTH:
            raise _PErr(pos, "max expression depth exceeded")

    def parse(self) -> list[_Node]:
        body, term, toks = self.list()
        if term != "eof":
            raise _PErr(toks[0].pos, f"unexpected {{{{{term}}}}}")
        return body

    def list(self) -> tuple[list[_Node], str, list[_Tok]]:
        out: list[_Node] = []
        while self.i < len(self.items):
            kind, toks, pos = self.items[self.i]
            self.i += 1
            if kind == "text":
                out.append(_Node("text", toks))
                continue
            t0 = toks[0] if toks else None
            if t0 is not None and t0.kind == "kw":
                kw = t0.val
                if kw in ("end", "else", "break", "continue") and len(toks) > 1 and not (kw == "else" and toks[1].kind == "kw"):
                    raise _PErr(toks[1].pos, f"unexpected {self.text(toks[1])} in {kw}")
                if kw in ("end", "else"):
                    return out, kw, toks
                if kw in ("break", "continue"):
                    if not self.depth:
                        raise _PErr(t0.pos, f"{{{{{kw}}}}} outside {{{{range}}}}")
                    out.append(_Node(kw))
                elif kw in ("if", "with", "range"):
                    out.append(self.control(kw, toks, pos))
                else:
                    raise _PErr(t0.pos, f"{{{{{kw}}}}} is not supported")
                continue
            out.append(_Node("action", self.pipeline(_Stream(toks, pos), "command", "eoa")))
        return out, "eof", []

    def control(self, kw: str, toks: list[_Tok], pos: int) -> _Node:
        self.deeper(toks[0].pos)
        node = self._control(kw, toks, pos)
        self.nest -= 1
        return node

    def _control(self, kw: str, toks: list[_Tok], pos: int) -> _Node:
        mark = len(self.vars)  # variables live until this control's {{end}}
        ts = _Stream(toks, pos)
        ts.next()
        pipe = self.pipeline(ts, kw, "eoa")
        self.depth += kw == "range"
        body, term, rest = self.list()
        self.depth -= kw == "range"
        else_ = None
        if term == "else" and len(rest) > 1:
            if rest[1].kind != "kw" or rest[1].val != kw or kw == "range":
                raise _PErr(rest[1].pos, f"unexpected {self.text(rest[1])} in else")
            # {{else if}} / {{else with}}: a nested control that shares our {{end}}.
            else_, term = [self.control(kw, rest[1:], pos)], "end"
        elif term == "else":
            else_, term, rest = self.list()
            if term == "else":
                raise _PErr(rest[0].pos, "expected end; found {{else}}")
        if term != "end":
            raise _PErr(len(self.src), "unexpected EOF")
        del self.vars[mark:]
        return _Node(kw, pipe, body, else_)

    def pipeline(self, ts: _Stream, ctx: str, stop: str) -> _Pipe:
        decl: list[str] = []
        t0, t1 = ts.peek(), ts.peek(1)
        if t0.kind == "var" and stop == "eoa":
            if t1.kind in (":=", "="):
                decl, ts.p = [t0.val], ts.p + 2
            elif t1.kind == "," and ctx == "range" and ts.peek(2).kind == "var" and ts.peek(3).kind in (":=", "="):
                decl, t1, ts.p = [t0.val, ts.peek(2).val], ts.peek(3), ts.p + 4
            elif t1.kind == ",":
                raise _PErr(t1.pos, f"too many declarations in {ctx}")
        assign = bool(decl) and t1.kind == "="
        for v in decl if assign else ():
            if v not in self.vars:
                raise _PErr(t0.pos, f'undefined variable "{v}"')
        if not assign:
            self.vars.extend(decl)
        cmds = [self.command(ts, ctx, bool(decl))]
        while ts.peek().kind == "|":
            ts.next()
            cmds.append(self.command(ts, ctx, True))
        t = ts.peek()
        if t.kind != stop:
            raise _PErr(t.pos, "unclosed left paren" if stop == ")" else "unexpected right paren")
        for i, c in enumerate(cmds[1:]):
            if c.args[0].kind == "lit" or (c.args[0].kind == "field" and not c.args[0].chain):
                raise _PErr(c.pos, f"non executable command in pipeline stage {i + 2}")
        return _Pipe(decl, assign, cmds)

    def command(self, ts: _Stream, ctx: str, later: bool) -> _Cmd:
        args: list[_Arg] = []
        while (t := ts.peek()).kind not in ("|", ")", "eoa"):
            if args and not t.sp:
                raise _PErr(t.pos, f"unexpected {self.text(t)} in operand")
            args.append(self.operand(ts))
        if not args:
            raise _PErr(t.pos, "missing value for command" if later else f"missing value for {ctx}")
        return _Cmd(args, args[0].pos, self.src[args[0].pos : args[-1].pos + len(args[-1].src)])

    def operand(self, ts: _Stream) -> _Arg:
        t = ts.next()
        val, chain = t.val, []
        if t.kind in ("field", "dot"):
            kind, chain = "field", [t.val] if t.kind == "field" else []
        elif t.kind == "var":
            if t.val not in self.vars:
                raise _PErr(t.pos, f'undefined variable "{t.val}"')
            kind = "var"
        elif t.kind == "ident":
            if t.val not in self.funcs:
                raise _PErr(t.pos, f'function "{t.val}" not defined')
            kind = "func"
        elif t.kind == "(":
            self.deeper(t.pos)
            kind, val = "sub", self.pipeline(ts, "parenthesized pipeline", ")")
            self.nest -= 1
            ts.next()
        elif t.kind in ("str", "num", "bool", "nil"):
            kind = "lit"
        else:
            raise _PErr(t.pos, "unexpected right paren" if t.kind == ")" else f"unexpected {self.text(t)} in command")
        end = ts.toks[ts.p - 1].end
        while ts.peek().kind == "field" and not ts.peek().sp:  # `.A.B`, `$x.A`, `(...).A`
            if kind in ("lit", "func"):
                raise _PErr(ts.peek().pos, f"unexpected . after term {go_quote(self.src[t.pos:end])}")
            f = ts.next()
            chain.append(f.val)
            end = f.end
        return _Arg(kind, val, tuple(chain), t.pos, self.src[t.pos : end])

    def text(self, t: _Tok) -> str:
        return "<" + self.src[t.pos : t.end] + ">"


# ---- execution --------------------------------------------------------------

class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_NOFINAL: Any = object()  # "no value piped in" (distinct from None/MISSING)


def _linecol(src: str, pos: int) -> tuple[int, int]:
    return src.count("\n", 0, pos) + 1, pos - (src.rfind("\n", 0, pos) + 1)


class _Exec:
    def __init__(self, tmpl: Template, data: object, funcs: Mapping[str, Any]) -> None:
        self.t, self.funcs = tmpl, funcs
        self.vars: list[list[Any]] = [["$", data]]  # a stack, like Go's state.vars
        self.strict = tmpl.missingkey == "error"
        self.steps = MAX_STEPS  # left to take
        self.size = 0  # of the output so far

    def step(self, n: int = 1) -> None:
        self.steps -= n
        if self.steps < 0:
            raise TemplateError(f"template: : exceeded maximum template steps ({MAX_STEPS})")

    def emit(self, out: list[str], text: str) -> None:
        self.size += len(text)
        if self.size > MAX_TEXT:
            raise TemplateError(f"template: : exceeded maximum template output ({MAX_TEXT >> 20} MiB)")
        out.append(text)

    def err(self, node: _Arg | _Cmd, msg: str) -> TemplateError:
        line, col = _linecol(self.t.source, node.pos)
        src = re.sub(r"\s*\n\s*", " ", node.src)  # keep the message on one line
        ctx = src if len(src) <= 20 else src[:20] + "..."
        return TemplateError(f'template: :{line}:{col}: executing "" at <{ctx}>: {msg}')

    def walk(self, dot: object, nodes: list[_Node], out: list[str]) -> None:
        for n in nodes:
            self.step()
            if n.kind == "text":
                self.emit(out, n.val)
            elif n.kind == "action":
                v = self.pipe(dot, n.val)
                if not n.val.decl:
                    self.emit(out, fmt_v(v))
            elif n.kind in ("break", "continue"):
                raise _Break if n.kind == "break" else _Continue
            else:
                mark = len(self.vars)
                try:
                    if n.kind == "range":
                        self.range(dot, n, out)
                    elif truth(v := self.pipe(dot, n.val)):
                        self.walk(v if n.kind == "with" else dot, n.body or [], out)
                    elif n.else_ is not None:
                        self.walk(dot, n.else_, out)
                finally:
                    del self.vars[mark:]

    def range(self, dot: object, n: _Node, out: list[str]) -> None:
        p: _Pipe = n.val
        v = self.pipe(dot, p)
        items: Any
        if isinstance(v, Mapping):
            items = [(k, v[k]) for k in sorted_keys(v)]  # Go ranges maps in key order
        elif isinstance(v, (list, tuple)):
            items = list(enumerate(v))
        elif isinstance(v, int) and not isinstance(v, bool):  # Go 1.22 range-over-int
            if len(p.decl) > 1:
                raise self.err(p.cmds[0], f"can't use {v} to iterate over more than one variable")
            self.step(v)  # refused before it starts, not after minutes
            items = zip(range(v), range(v)) if v > 0 else []
        elif v is None or v is MISSING:
            items = []
        else:
            raise self.err(p.cmds[0], f"range can't iterate over {fmt_v(v)}")
        if not items and n.else_ is not None:
            self.walk(dot, n.else_, out)
        for k, elem in items:
            self.step()
            if p.assign:
                self.setvar(p.decl[-1], elem)
                if len(p.decl) == 2:
                    self.setvar(p.decl[0], k)
            elif p.decl:  # pipe() pushed them: [$i,] $v on top of the stack
                self.vars[-1][1] = elem
                if len(p.decl) == 2:
                    self.vars[-2][1] = k
            mark = len(self.vars)
            try:
                self.walk(elem, n.body or [], out)
            except _Break:
                break
            except _Continue:
                pass
            finally:
                del self.vars[mark:]

    def setvar(self, name: str, value: object) -> None:
        for slot in reversed(self.vars):
            if slot[0] == name:
                slot[1] = value
                return

    def pipe(self, dot: object, p: _Pipe) -> Any:
        v = _NOFINAL
        for c in p.cmds:
            v = self.cmd(dot, c, v)
        for name in p.decl:
            if p.assign:
                self.setvar(name, v)
            else:
                self.vars.append([name, v])
        return v

    def cmd(self, dot: object, c: _Cmd, final: Any) -> Any:
        a = c.args[0]
        if a.kind == "func":
            return self.call(dot, a.val, c.args[1:], final, c)
        if len(c.args) > 1 or final is not _NOFINAL:
            raise self.err(a, f"can't give argument to non-function {a.src}")
        if a.kind == "lit" and a.val is None:
            raise self.err(a, "nil is not a command")
        return self.arg(dot, a)

    def arg(self, dot: object, a: _Arg) -> Any:
        if a.kind == "lit":
            return a.val
        if a.kind == "func":  # a bare function name as an argument is a niladic call
            return self.call(dot, a.val, [], _NOFINAL, a)
        v = dot if a.kind == "field" else self.lookup(a.val) if a.kind == "var" else self.pipe(dot, a.val)
        for name in a.chain:
            v = self.field(v, name, a)
        return v

    def lookup(self, name: str) -> Any:
        for slot in reversed(self.vars):
            if slot[0] == name:
                return slot[1]
        raise TemplateError(f'template: : undefined variable "{name}"')  # parser prevents this

    def field(self, v: Any, name: str, a: _Arg) -> Any:
        if isinstance(v, Mapping):
            if name in v:
                return v[name]
            if self.strict:
                raise self.err(a, f"map has no entry for key {go_quote(name)}")
            return MISSING
        if v is MISSING or v is None:
            if self.strict:
                raise self.err(a, f"nil data; no entry for key {go_quote(name)}" if v is MISSING
                               else f"nil pointer evaluating interface {{}}.{name}")
            return MISSING
        if isinstance(v, (str, int, float, list, tuple)) or name.startswith("_") or not hasattr(v, name):
            raise self.err(a, f"can't evaluate field {name} in type {go_type(v)}")
        return getattr(v, name)  # plain objects/dataclasses: attribute access

    def call(self, dot: object, name: str, argnodes: list[_Arg], final: Any, node: _Arg | _Cmd) -> Any:
        fn, lo, hi = self.funcs[name]
        n = len(argnodes) + (final is not _NOFINAL)
        if n < lo or (hi is not None and n > hi):
            raise self.err(node, f"wrong number of args for {name}: want {'at least ' if hi is None else ''}{lo} got {n}")
        if name in ("and", "or"):  # short-circuit, as Go >= 1.18
            v = MISSING
            for an in argnodes:
                v = self.arg(dot, an)
                if truth(v) == (name == "or"):
                    return v
            return final if final is not _NOFINAL else v
        args = [self.arg(dot, x) for x in argnodes] + ([] if final is _NOFINAL else [final])
        # Go hands a missing value to a function as untyped nil.
        args = [None if x is MISSING else x for x in args]
        self.step()
        try:
            v = fn(*args)
            if isinstance(v, str):  # making text costs too: a step per 256 bytes (MAX_STEPS: 256 MiB in all)
                check_size(len(v))
                self.step(len(v) >> 8)
            return v
        except FuncError as e:
            raise self.err(node, f"error calling {name}: {e}") from None
        except (ArgError, LimitError) as e:
            raise self.err(node, str(e)) from None


# ---- public API -------------------------------------------------------------

@record(frozen=True, eq=False)
class Template:
    """A compiled template; immutable, so compile once and execute per row."""

    source: str
    root: tuple[_Node, ...]
    missingkey: str = "default"

    def execute(self, data: object) -> str:
        return self._run(data, FUNCS)

    def execute_header(self, data: object) -> str:
        """Run with docker's HeaderFunctions (json/split/join/title/lower/upper/
        truncate return their first argument) to render a table's header row."""
        return self._run(data, HEADER_FUNCS)

    def _run(self, data: object, funcs: Mapping[str, Any]) -> str:
        out: list[str] = []
        try:
            _Exec(self, data, funcs).walk(data, list(self.root), out)
        except RecursionError:  # MAX_DEPTH keeps templates well inside the stack; deep data might not
            raise TemplateError("template: : exceeded maximum template depth") from None
        return "".join(out)


def compile_template(template: str, *, missingkey: str = "default") -> Template:
    """Parse ``template``; missingkey is Go's option: default/invalid/zero print
    "<no value>" for missing keys (identical for interface maps), error raises."""
    if missingkey not in ("default", "invalid", "zero", "error"):
        raise ValueError(f"unrecognized missingkey option {missingkey!r}")
    try:
        root = _Parser(template, FUNCS).parse()
    except RecursionError:  # MAX_DEPTH should make this unreachable
        raise TemplateError("template: :1: max expression depth exceeded") from None
    except _PErr as e:
        raise TemplateError(f"template: :{_linecol(template, e.pos)[0]}: {e.msg}") from None
    return Template(template, tuple(root), missingkey)


_cached_compile = functools.lru_cache(maxsize=256)(compile_template)


def render(template: str, data: object, *, missingkey: str = "default") -> str:
    """Compile (cached) and execute in one go."""
    return _cached_compile(template, missingkey=missingkey).execute(data)


# ---- docker formatter helpers (cli/command/formatter/formatter.go) ----------

def is_table(fmt: str) -> bool:
    """docker's Format.IsTable: a bare prefix test, exactly as docker does it."""
    return fmt.startswith("table")


def strip_table(fmt: str) -> str:
    """The format with docker's "table" prefix removed (unchanged if not a table)."""
    return fmt[len("table"):] if is_table(fmt) else fmt


def docker_preprocess(fmt: str) -> str:
    """formatter.Context.preFormat, used by the ls/ps-style listings (docker
    inspect -f does NOT do this): drop the "table" prefix, map "json" to
    "{{json .}}", trim spaces, then turn the two-character escapes \\t and \\n
    into a real tab and newline (strings.NewReplacer semantics)."""
    fmt = strip_table(fmt) if is_table(fmt) else "{{json .}}" if fmt == "json" else fmt
    return re.sub(r"\\[tn]", lambda m: "\t" if m.group() == "\\t" else "\n", fmt.strip(" "))
