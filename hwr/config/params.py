"""Declaring a parameter once: its type, default, help text, choices and rule live in one
dataclass field (:func:`param`), and everything else reads them.

The argparse parsers and ``--help`` texts (:mod:`hwr.cli`), the README's parameter tables, the
validation of every verb and the value checks of ``tune``'s search space all come from these
declarations, so a parameter's rule cannot differ between ``train`` and the search space.
Knows nothing of MLflow or TensorFlow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from hwr.errors import ConfigError

DECLARATION = "hwr.param"


@dataclass(frozen=True)
class Rule:
    """A check of one value: ``test(value)`` is true for a valid value; ``expected`` ends the error
    message ``name=value: expected ...``."""

    test: Callable[[Any], bool]
    expected: str


POSITIVE = Rule(lambda v: v > 0, "a positive integer")
COUNT = Rule(lambda v: v >= 0, "0 or a positive integer")
FRACTION = Rule(lambda v: 0.0 <= v < 1.0, "a fraction in [0, 1)")
UNIT_INTERVAL = Rule(lambda v: 0.0 <= v <= 1.0, "a value in [0, 1]")
LEARNING_RATE = Rule(lambda v: 0.0 < v < 1.0, "a learning rate in (0, 1)")
NOT_BLANK = Rule(lambda v: bool(str(v).strip()), "a non-empty value")
MINUTES = Rule(lambda v: v >= 0, "0 (no limit) or a number of minutes")
NON_NEGATIVE = Rule(lambda v: v >= 0, "0 or a positive number")


def one_of(choices: tuple) -> Rule:
    """The rule of a parameter with a fixed set of values."""
    return Rule(lambda v: v in choices, f"one of {', '.join(map(str, choices))}")


def parse_bool(text) -> bool:
    """``true/false`` (also ``1/0``, ``yes/no``, ``on/off``) -> bool.

    Raises:
        ValueError: any other text.
    """
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_int_list(text: str | list | tuple, name: str = "value") -> tuple[int, ...]:
    """``"32,64,128"`` (or a list) -> ``(32, 64, 128)``.

    Raises:
        ConfigError: an element is not a positive integer, or the list is empty.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = tuple(int(str(v).strip()) for v in items if str(v).strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={text!r}: expected comma-separated integers, e.g. 32,64") from exc
    if not values or any(v <= 0 for v in values):
        raise ConfigError(f"{name}={text!r}: expected one or more positive integers")
    return values


def int_list_text(values) -> str:
    """``(32, 64)`` -> ``"32,64"`` (how such a parameter is written to MLflow and the CLI)."""
    return ",".join(str(v) for v in values)


@dataclass(frozen=True)
class Declaration:
    """What is declared of one parameter besides its name and default.

    Attributes:
        help: one or two sentences for ``--help`` and the README table.
        rule: the check of a value (None: any value of the right type).
        choices: the allowed values, if they are a fixed set (then ``rule`` checks them).
        parse: text -> value for parameters whose value is not a plain str/int/float/bool.
        text: value -> text (the inverse of ``parse``) for MLflow params and defaults.
    """

    help: str
    rule: Rule | None = None
    choices: tuple = ()
    parse: Callable[[str], Any] | None = None
    text: Callable[[Any], str] | None = None

    def full_help(self) -> str:
        """The help text with the allowed values, as ``--help`` and the README show it."""
        return f"{self.help} (one of: {', '.join(map(str, self.choices))})" if self.choices else self.help

    def as_text(self, value) -> str:
        """How the value is written on a command line, in MLflow and in the README."""
        if self.text is not None:
            return self.text(value)
        return str(value).lower() if isinstance(value, bool) else str(value)


def param(default, help: str, *, rule: Rule | None = None, choices: tuple = (),
          parse: Callable | None = None, text: Callable | None = None):
    """A dataclass field carrying the parameter's :class:`Declaration` (its one declaration)."""
    rule = rule or (one_of(tuple(choices)) if choices else None)
    return field(default=default, metadata={DECLARATION: Declaration(help, rule, tuple(choices), parse, text)})


def same_as(owner: type, name: str):
    """A field declared exactly as ``owner``'s field ``name`` (a parameter shared by two verbs)."""
    source = {f.name: f for f in dataclasses.fields(owner)}[name]
    return field(default=source.default, metadata=source.metadata)


def declaration(f: dataclasses.Field) -> Declaration | None:
    return f.metadata.get(DECLARATION)


def check_value(name: str, value, decl: Declaration, default) -> None:
    """Check a value's type (after the default's: bool, int, float or str) and its rule.

    Raises:
        ConfigError: ``name=value: expected ...``.
    """
    if decl.text is not None and not isinstance(value, str):
        value = decl.text(value)  # a list parameter is checked in its text form, e.g. "32,64"

    if isinstance(default, bool):
        ok_type, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value)
        kind = "an integer"
    elif isinstance(default, float):
        ok_type, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    else:
        ok_type, kind = isinstance(value, str), "text"
    if not ok_type:
        raise ConfigError(f"{name}={value!r}: expected {kind}")
    if decl.text is not None:
        decl.parse(value)  # raises ConfigError naming the problem
    if decl.rule is not None and not decl.rule.test(value):
        raise ConfigError(f"{name}={value!r}: expected {decl.rule.expected}")


class Config:
    """Shared behaviour of the verbs' configuration dataclasses.

    A configuration's *flat parameters* are its declared fields plus those of its nested
    configurations (fields whose ``default_factory`` is a :class:`Config`), by name: the names of
    the MLproject parameters. ``HIDDEN`` names nested parameters the verb does not accept.
    """

    HIDDEN: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def nested(cls) -> dict[str, type]:
        """Nested configuration fields: name -> their Config class."""
        return {f.name: f.default_factory for f in dataclasses.fields(cls)
                if isinstance(f.default_factory, type) and issubclass(f.default_factory, Config)}

    @classmethod
    def declarations(cls) -> dict[str, tuple[Declaration, object]]:
        """Every flat parameter, in declaration order: name -> (declaration, default)."""
        out: dict[str, tuple[Declaration, object]] = {}
        nested, own = cls.nested(), cls._own_names()
        for f in dataclasses.fields(cls):
            if f.name in nested:
                out.update({k: v for k, v in nested[f.name].declarations().items() if k not in own})
            elif declaration(f) is not None:
                out[f.name] = (declaration(f), f.default)
        return {k: v for k, v in out.items() if k not in cls.HIDDEN}

    @classmethod
    def _own_names(cls) -> set[str]:
        """The declared fields of this class itself: a nested parameter of the same name is shadowed
        (e.g. ``tune``'s own ``resume_run_id`` over its training configuration's)."""
        return {f.name for f in dataclasses.fields(cls) if declaration(f) is not None}

    def flat_params(self) -> dict[str, object]:
        """Every flat parameter's value (lists as their text, e.g. ``conv_filters="32,64,128"``)."""
        out: dict[str, object] = {}
        nested, own = self.nested(), self._own_names()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in nested:
                out.update({k: v for k, v in value.flat_params().items() if k not in own})
            elif declaration(f) is not None:
                out[f.name] = declaration(f).text(value) if declaration(f).text else value
        return {k: v for k, v in out.items() if k not in self.HIDDEN}

    def replace(self, **changes):
        """A copy with flat parameters changed; text values of parsed parameters are parsed.

        Raises:
            ConfigError: an unknown parameter name.
        """
        own = {f.name: f for f in dataclasses.fields(self) if declaration(f) is not None}
        nested = self.nested()
        for name in changes:
            if name not in own and not any(name in c.declarations() for c in nested.values()):
                raise ConfigError(f"unknown parameter {name!r}")
        updates = {}
        for name, value in changes.items():
            if name in own:
                parse = declaration(own[name]).parse
                updates[name] = parse(value) if parse and isinstance(value, str) else value
        for name, cls in nested.items():
            mine = {k: v for k, v in changes.items() if k in cls.declarations() and k not in own}
            if mine:
                updates[name] = getattr(self, name).replace(**mine)
        return dataclasses.replace(self, **updates)

    def validate(self):
        """Check every declared value, the nested configurations, then :meth:`check`.

        Returns self. Raises:
            ConfigError: naming the first bad parameter.
        """
        nested = self.nested()
        for f in dataclasses.fields(self):
            if f.name in nested:
                getattr(self, f.name).validate()
            elif declaration(f) is not None:
                check_value(f.name, getattr(self, f.name), declaration(f), f.default)
        self.check()
        return self

    def check(self) -> None:
        """Rules across parameters (override); raises ConfigError."""
