"""A parameter declared once: name, type, range or choices, default and help.

The same declaration checks a notebook's papermill parameters, builds the CLI's options and validates the numeric
fields of profiles and thresholds, so that every way in says the same thing about the same bad value.
"""
from __future__ import annotations

import argparse
import numbers
from dataclasses import dataclass
from typing import Callable

from .errors import ConfigError

KINDS = {int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # int, float or str
    default: object
    help: str
    low: float | None = None  # inclusive bounds of a number
    high: float | None = None
    choices: Callable[[], list] | None = None  # the allowed strings (a function: registries can grow)
    optional: bool = False  # None is allowed: "use the layer below's default"

    def check(self, value, source: str = "parameter"):
        """``value`` converted to the parameter's type, or a ConfigError naming the parameter, what it takes, and
        what was given. ``source`` says where it came from ("notebook parameter", "option --seeds", ...)."""
        if value is None and self.optional:
            return None
        ok = (self.kind is str and isinstance(value, str)) or (
            self.kind in (int, float) and isinstance(value, numbers.Real) and not isinstance(value, bool)
            and (self.kind is float or isinstance(value, numbers.Integral)))
        if ok and self.kind is not str:
            value = self.kind(value)
            ok = (self.low is None or value >= self.low) and (self.high is None or value <= self.high) \
                and value == value  # NaN is no number here
        if ok and self.choices is not None and value not in self.choices():
            ok = False
        if not ok:
            raise ConfigError(f"{source} {self.name!r} must be {self.allowed()} ({self.help}), got {value!r}: "
                              f"pass a value in that range")
        return value

    def allowed(self) -> str:
        """What the parameter takes, in words: 'an integer in 1..1000 or None'."""
        if self.choices is not None:
            text = f"one of {list(self.choices())}"
        else:
            text = KINDS[self.kind]
            if self.low is not None and self.high is not None:
                text += f" in {_number(self.low)}..{_number(self.high)}"
            elif self.low is not None:
                text += f" >= {_number(self.low)}"
        return text + (" or None" if self.optional else "")

    def parse(self, text: str):
        """A command-line string as this parameter's value (argparse ``type=``): checked, with the same message."""
        if self.optional and text == "None":
            return None
        try:
            value = self.kind(text)
        except ValueError:
            value = text
        try:
            return self.check(value, "the value of")
        except ConfigError as err:  # argparse shows the message of this error type alone
            raise argparse.ArgumentTypeError(str(err)) from None


def _number(x) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def check_fields(obj, params: dict[str, Param], source: str) -> None:
    """Check the fields of a dataclass instance that ``params`` declares (profiles, thresholds)."""
    for name, param in params.items():
        param.check(getattr(obj, name), source)
