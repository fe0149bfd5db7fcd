"""nsbridge.record behaves as the part of dataclasses it stands in for."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from nsbridge.record import FrozenInstanceError, asdict, field, fields, is_record, record, replace


def _both(body):
    """The same class body as a record and as a dataclass."""
    return record(type("R", (), dict(body))), dataclasses.dataclass(type("D", (), dict(body)))


BODY = {
    "__annotations__": {"a": "int", "b": "str", "c": "list[int]"},
    "b": "x",
    "c": field(default_factory=list),
}


def test_matches_dataclasses_construction_repr_eq_asdict():
    body = dict(BODY)
    R = record(type("P", (), {**body, "c": field(default_factory=list)}))
    D = dataclasses.dataclass(type("P", (), {**body, "c": dataclasses.field(default_factory=list)}))
    for args, kw in [((1,), {}), ((1, "y"), {}), ((), {"a": 2, "c": [3]}), ((1, "y", [4, 5]), {})]:
        r, d = R(*args, **kw), D(*args, **kw)
        assert repr(r) == repr(d)
        assert asdict(r) == dataclasses.asdict(d)
        assert [f.name for f in fields(r)] == [f.name for f in dataclasses.fields(d)]
    assert R(1) == R(1) and R(1) != R(2)
    assert R(1).__eq__(object()) is NotImplemented
    assert R.__hash__ is None  # mutable and comparable: unhashable, as a dataclass
    assert R.b == "x"  # class-level default stays readable


def test_default_factory_is_called_per_instance():
    R = record(type("R", (), dict(BODY)))
    x, y = R(1), R(2)
    x.c.append(1)
    assert y.c == []


def test_frozen_is_immutable_and_hashable():
    @record(frozen=True)
    class P:
        a: int
        b: tuple[str, ...] = ()

    p = P(1, ("x",))
    with pytest.raises(FrozenInstanceError):
        p.a = 2
    with pytest.raises(AttributeError):
        del p.b
    assert hash(p) == hash(P(1, ("x",))) and {p, P(1, ("x",))} == {p}
    assert replace(p, a=3) == P(3, ("x",))


def test_eq_false_keeps_identity():
    @record(frozen=True, eq=False)
    class T:
        a: int

    assert T(1) != T(1)
    t = T(1)
    assert {t: 1}[t] == 1


def test_slots_have_no_dict():
    @record(slots=True)
    class S:
        a: int
        b: object = None

    s = S(1)
    assert not hasattr(s, "__dict__") and s.b is None
    with pytest.raises(AttributeError):
        s.c = 1  # type: ignore[attr-defined]


def test_nested_asdict_and_post_init():
    @record
    class Inner:
        x: int

    @record
    class Outer:
        inner: Inner
        items: list[Inner] = field(default_factory=list)
        by: dict[str, Inner] = field(default_factory=dict)
        seen: bool = False

        def __post_init__(self) -> None:
            self.seen = True

    o = Outer(Inner(1), [Inner(2)], {"k": Inner(3)})
    assert o.seen
    assert asdict(o) == {"inner": {"x": 1}, "items": [{"x": 2}], "by": {"k": {"x": 3}}, "seen": True}
    assert is_record(o) and is_record(Outer) and not is_record({})


def test_inherited_fields_come_first():
    @record
    class Base:
        a: int

    @record
    class Sub(Base):
        b: int = 2

    assert [f.name for f in fields(Sub)] == ["a", "b"] and Sub(1) == Sub(1, 2)


def test_mistakes_are_refused_as_dataclasses_refuses_them():
    with pytest.raises(ValueError, match="mutable default"):
        record(type("M", (), {"__annotations__": {"a": "list"}, "a": []}))
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        record(type("N", (), {"__annotations__": {"a": "int", "b": "int"}, "a": 1}))
    with pytest.raises(ValueError):
        field(default=1, default_factory=list)
    with pytest.raises(TypeError):
        asdict(1)
    with pytest.raises(TypeError):
        fields(object())


def test_classvar_is_not_a_field():
    @record
    class C:
        KIND: ClassVar[str] = "k"
        a: int = 0

    assert [f.name for f in fields(C)] == ["a"] and C.KIND == "k"
