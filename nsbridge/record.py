"""Records: the part of `dataclasses` that nsbridge uses, without importing it.

`import dataclasses` imports `inspect`, and with it ast, dis and tokenize:
about 6 ms of every CLI start on these machines, a fifth of a whole
`nsbridge exec` (tools/bench.py core). The package's classes are declared
exactly as dataclasses are, with `@record` in place of `@dataclass`:

    @record
    class Endpoint:
        container_id: str
        aliases: list[str] = field(default_factory=list)

What is covered: annotated fields in order (inherited from record bases),
defaults and `field(default_factory=...)`, `__post_init__`, keyword or
positional construction, `==`, repr, `frozen=True` (immutable and hashable),
`eq=False`, `slots=True`, and fields() / asdict() / replace(). Anything else
dataclasses offers is refused loudly rather than half-done.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs ~2 ms a start: only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen record."""


class Field:
    __slots__ = ("name", "default", "default_factory")

    def __init__(self, default: object = _MISSING, default_factory: object = _MISSING) -> None:
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.default = default
        self.default_factory = default_factory

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | object = _MISSING) -> Any:
    """dataclasses.field, for the two arguments nsbridge uses."""
    return Field(default, default_factory)


def record(cls: type[T] | None = None, /, *, frozen: bool = False, eq: bool = True, slots: bool = False):
    """The class decorator: `@record`, `@record(frozen=True)`, ..."""

    def wrap(c: type[T]) -> type[T]:
        return _build(c, frozen=frozen, eq=eq, slots=slots)

    return wrap if cls is None else wrap(cls)


def fields(obj_or_cls: object) -> tuple[Field, ...]:
    try:
        return obj_or_cls.__record_fields__  # type: ignore[union-attr]
    except AttributeError:
        raise TypeError(f"{obj_or_cls!r} is not a record") from None


def is_record(obj: object) -> bool:
    return hasattr(type(obj) if not isinstance(obj, type) else obj, "__record_fields__")


def asdict(obj: object) -> dict[str, Any]:
    """Fields as a dict, recursively through records, lists, tuples and dicts."""
    if isinstance(obj, type) or not is_record(obj):
        raise TypeError("asdict() should be called on record instances")
    return _plain(obj)


def _plain(v: object) -> Any:
    if hasattr(type(v), "__record_fields__"):
        return {f.name: _plain(getattr(v, f.name)) for f in type(v).__record_fields__}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_plain(x) for x in v)
    if isinstance(v, dict):
        return {_plain(k): _plain(x) for k, x in v.items()}
    return v


def replace(obj: T, /, **changes: Any) -> T:
    for f in fields(obj):
        changes.setdefault(f.name, getattr(obj, f.name))
    return type(obj)(**changes)


def _is_classvar(annotation: object) -> bool:
    text = annotation.strip("'\"") if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _collect(cls: type) -> list[Field]:
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in base.__dict__.get("__record_fields__", ()):
            found[f.name] = f
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, Field) else Field(value)
        if f.default is not _MISSING and f.default.__class__.__hash__ is None:
            # as dataclasses: a shared list/dict/set default is a bug waiting to happen
            raise ValueError(f"mutable default {type(f.default)} for field {name} is not allowed: use default_factory")
        f.name = name
        found[name] = f
    out = list(found.values())
    seen_default = False
    for f in out:
        has = f.default is not _MISSING or f.default_factory is not _MISSING
        if seen_default and not has:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
        seen_default = seen_default or has
    return out


def _values(self: object) -> tuple[object, ...]:
    return tuple(getattr(self, f.name) for f in self.__record_fields__)  # type: ignore[attr-defined]


# Shared by every record: only __init__ is generated (compiling is what costs
# at import: ~0.1 ms a method).
def _repr(self: object) -> str:
    inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__)  # type: ignore[attr-defined]
    return f"{type(self).__qualname__}({inner})"


def _eq(self: object, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: object) -> int:
    return hash(_values(self))


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _make_init(cls: type, flds: list[Field], frozen: bool) -> Callable[..., None]:
    glb: dict[str, object] = {"_MISSING": _MISSING, "_set": object.__setattr__}
    params, body = [], []
    for f in flds:
        if f.default_factory is not _MISSING:
            glb[f"_fac_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            value = f"_fac_{f.name}() if {f.name} is _MISSING else {f.name}"
        elif f.default is not _MISSING:
            glb[f"_dflt_{f.name}"] = f.default
            params.append(f"{f.name}=_dflt_{f.name}")
            value = f.name
        else:
            params.append(f.name)
            value = f.name
        body.append(f"_set(self, {f.name!r}, {value})" if frozen else f"self.{f.name} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    src = f"def __init__(self, {', '.join(params)}):\n" + "".join(f"    {line}\n" for line in body or ["pass"])
    made: dict[str, Callable[..., None]] = {}
    exec(src, glb, made)  # noqa: S102 (generated from field names, as dataclasses does)
    init = made["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _lazy_init(cls: type, flds: list[Field], frozen: bool) -> Callable[..., None]:
    """__init__ is compiled at the class's first instance, not at import
    (~0.25 ms for Container): a command builds few of the classes it imports."""

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        init = _make_init(cls, flds, frozen)
        cls.__init__ = init  # type: ignore[misc]
        init(self, *args, **kwargs)

    return __init__


def _build(cls: type, *, frozen: bool, eq: bool, slots: bool) -> type:
    flds = _collect(cls)
    for f in flds:  # class-level defaults stay readable, as on a dataclass
        if f.name in cls.__dict__:
            if f.default is _MISSING or slots:
                delattr(cls, f.name)
            else:
                setattr(cls, f.name, f.default)
    methods: dict[str, object] = {"__repr__": _repr}
    if eq:
        methods["__eq__"] = _eq
        methods["__hash__"] = _hash if frozen else None
    if frozen:
        methods["__setattr__"] = _frozen_setattr
        methods["__delattr__"] = _frozen_delattr
    for name, fn in methods.items():
        setattr(cls, name, fn)
    cls.__record_fields__ = tuple(flds)  # type: ignore[attr-defined]
    cls.__match_args__ = tuple(f.name for f in flds)  # type: ignore[attr-defined]
    if slots:
        ns = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        ns["__slots__"] = tuple(
            f.name for f in flds if not any(f.name in getattr(b, "__slots__", ()) for b in cls.__mro__[1:])
        )
        cls = type(cls)(cls.__name__, cls.__bases__, ns)
    cls.__init__ = _lazy_init(cls, flds, frozen)  # type: ignore[misc]
    return cls
