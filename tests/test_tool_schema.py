"""Tool schemas from signatures and docstrings; argument validation; registration errors."""
from __future__ import annotations

import enum
import dataclasses
import datetime
from collections.abc import Callable
from typing import List, Literal, Optional

from typing_extensions import TypedDict  # pydantic needs it below Python 3.12

import pydantic

import pytest

from lazystream.tools import fc_register
from lazystream.tools._registry import registered_tools, resolve_tools
from lazystream.tools._schema import ToolSchemaError, build_tool_spec
from lazystream.tools._validate import ToolArgumentError, parse_arguments, validate_arguments


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


# --- the table: (function, expected description, properties, required) -------------------

def seed_weather(location: str, unit: Literal["fahrenheit", "celsius"] = "fahrenheit"):
    """
    Get the current weather in a given location
    Args:
        location (str): The city and state, e.g. San Francisco, CA.
        unit (str): The temperature unit to use. Infer this from the users location.
    """


def seed_forecast(location: str, num_days: int, unit: Literal["celsius", "fahrenheit"] = 'fahrenheit'):
    """
    Get an N-day weather forecast
    Args:
        location (str): The city and state, e.g. San Francisco, CA.
        num_days (int): The number of days to forecast.
        unit (Literal['celsius', 'fahrenheit']): The temperature unit to use. Infer this from the users location.
    """


def primitives(s: str, i: int, f: float, b: bool = False):
    """Take one of each primitive.

    Args:
        s: A string.
        i: An integer.
        f: A float.
        b: A flag.
    """


def containers(tags: list[str], matrix: List[List[int]], meta: dict, scores: dict[str, float]):
    """Take containers.

    Args:
        tags (list[str]): Tags.
        matrix: Rows of
            integers, continued on a second line.
        meta: Free-form object.
        scores: Score per name.
    """


def optionals(a: Optional[int] = None, b: str | None = None, c: int = None, d: Optional[list[str]] = None):
    """Optional parameters.

    Args:
        a: Maybe an int.
        b: Maybe a string.
        c: Implicitly optional.
        d: Maybe a list.
    """


def enums(color: Color, level: Level = Level.LOW, mode: Optional[Literal["a", "b"]] = None,
          flag: Literal[True, 1] = 1):
    """Enum parameters.

    Args:
        color: A color.
        level: A level.
        mode: A mode.
        flag: Mixed literal.
    """


def rest_style(query: str, limit: int = 10):
    """Search the index.

    Longer description that is not the summary.

    :param query: What to look for,
        over two lines.
    :param limit: How many hits.
    :returns: The hits.
    """


def rest_typed(query, limit=3):
    """Search with types in the docstring.

    :param str query: What to look for.
    :param limit: How many hits.
    :type limit: int
    """


def doc_typed(location, unit="celsius", days=None):
    """Types only in the docstring (parsed, never evaluated).

    Args:
        location (str): The city.
        unit (Literal['celsius', 'fahrenheit']): The unit.
        days (Optional[int], optional): Days ahead.
    """


def multi_line_summary(x: int):
    """Return the square
    of a number.

    Args:
        x: The number.
    Returns:
        int: The square.
    """


def flush_left(location: str, days: int = 1):
    """
Get a forecast, docstring written flush left as in the seed's page
Args:
location (str): The city,
    continued.
days (int): How many days.
Returns:
str: The forecast.
"""


def no_params():
    """Return the time."""


class Address(TypedDict):
    street: str
    zip: int


class Person(pydantic.BaseModel):
    name: str
    age: int = 0


@dataclasses.dataclass
class Point:
    x: float
    y: float


def structured(address: Address, person: Person, at: Point, day: datetime.date,
               when: Optional[datetime.datetime] = None, key: int | str = 0):
    """Take structured values.

    Args:
        address: Where.
        person: Who.
        at: The point.
        day: Which day.
        when: The moment.
        key: An id or a name.
    """


def numpy_style(query, limit=10):
    """Search the index, NumPy style.

    Parameters
    ----------
    query : str
        What to look
        for.
    limit : int, optional
        How many hits.
    """


TABLE = [
    (seed_weather, "Get the current weather in a given location",
     {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA."},
      "unit": {"type": "string", "enum": ["fahrenheit", "celsius"], "default": "fahrenheit",
               "description": "The temperature unit to use. Infer this from the users location."}},
     ["location"]),
    (seed_forecast, "Get an N-day weather forecast",
     {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA."},
      "num_days": {"type": "integer", "description": "The number of days to forecast."},
      "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "fahrenheit",
               "description": "The temperature unit to use. Infer this from the users location."}},
     ["location", "num_days"]),
    (primitives, "Take one of each primitive.",
     {"s": {"type": "string", "description": "A string."},
      "i": {"type": "integer", "description": "An integer."},
      "f": {"type": "number", "description": "A float."},
      "b": {"type": "boolean", "description": "A flag.", "default": False}},
     ["s", "i", "f"]),
    (containers, "Take containers.",
     {"tags": {"type": "array", "items": {"type": "string"}, "description": "Tags."},
      "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}},
                 "description": "Rows of integers, continued on a second line."},
      "meta": {"type": "object", "description": "Free-form object."},
      "scores": {"type": "object", "additionalProperties": {"type": "number"},
                 "description": "Score per name."}},
     ["tags", "matrix", "meta", "scores"]),
    (optionals, "Optional parameters.",
     {"a": {"type": ["integer", "null"], "description": "Maybe an int.", "default": None},
      "b": {"type": ["string", "null"], "description": "Maybe a string.", "default": None},
      "c": {"type": ["integer", "null"], "description": "Implicitly optional.", "default": None},
      "d": {"type": ["array", "null"], "items": {"type": "string"}, "description": "Maybe a list.",
            "default": None}},
     []),
    (enums, "Enum parameters.",
     {"color": {"type": "string", "enum": ["red", "blue"], "description": "A color."},
      "level": {"type": "integer", "enum": [1, 2], "description": "A level.", "default": 1},
      "mode": {"type": ["string", "null"], "enum": ["a", "b", None], "description": "A mode.",
               "default": None},
      "flag": {"type": ["boolean", "integer"], "enum": [True, 1], "description": "Mixed literal.",
               "default": 1}},
     ["color"]),
    (rest_style, "Search the index.",
     {"query": {"type": "string", "description": "What to look for, over two lines."},
      "limit": {"type": "integer", "description": "How many hits.", "default": 10}},
     ["query"]),
    (rest_typed, "Search with types in the docstring.",
     {"query": {"type": "string", "description": "What to look for."},
      "limit": {"type": "integer", "description": "How many hits.", "default": 3}},
     ["query"]),
    (doc_typed, "Types only in the docstring (parsed, never evaluated).",
     {"location": {"type": "string", "description": "The city."},
      "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "The unit.",
               "default": "celsius"},
      "days": {"type": ["integer", "null"], "description": "Days ahead.", "default": None}},
     ["location"]),
    (multi_line_summary, "Return the square of a number.",
     {"x": {"type": "integer", "description": "The number."}}, ["x"]),
    (flush_left, "Get a forecast, docstring written flush left as in the seed's page",
     {"location": {"type": "string", "description": "The city, continued."},
      "days": {"type": "integer", "description": "How many days.", "default": 1}},
     ["location"]),
    (no_params, "Return the time.", {}, []),
    (structured, "Take structured values.",
     {"address": {"type": "object", "description": "Where.", "required": ["street", "zip"],
                  "additionalProperties": False,
                  "properties": {"street": {"type": "string"}, "zip": {"type": "integer"}}},
      "person": {"type": "object", "description": "Who.", "required": ["name"],
                 "properties": {"name": {"type": "string"}, "age": {"type": "integer", "default": 0}}},
      "at": {"type": "object", "description": "The point.", "required": ["x", "y"],
             "additionalProperties": False,
             "properties": {"x": {"type": "number"}, "y": {"type": "number"}}},
      "day": {"type": "string", "format": "date", "description": "Which day."},
      "when": {"type": ["string", "null"], "format": "date-time", "description": "The moment.",
               "default": None},
      "key": {"type": ["integer", "string"], "description": "An id or a name.", "default": 0}},
     ["address", "person", "at", "day"]),
    (numpy_style, "Search the index, NumPy style.",
     {"query": {"type": "string", "description": "What to look for."},
      "limit": {"type": "integer", "description": "How many hits.", "default": 10}},
     ["query"]),
]


@pytest.mark.parametrize("fn,description,properties,required", TABLE,
                         ids=[row[0].__name__ for row in TABLE])
def test_schema_table(fn, description, properties, required):
    assert build_tool_spec(fn).schema == {
        "type": "function",
        "function": {"name": fn.__name__, "description": description,
                     "parameters": {"type": "object", "properties": properties,
                                    "required": required}}}


# --- registration errors ------------------------------------------------------------------

def undocumented(x: int):
    return x


def undescribed(x: int, y: int):
    """Add numbers.

    Args:
        x: The first.
    """


class Opaque:
    """A plain class: nothing says what JSON it is made from."""


def bad_type(x: Opaque):
    """Take an opaque object.

    Args:
        x: An object.
    """


def bad_callable(x: Callable[[int], int]):
    """Take a function.

    Args:
        x: A function.
    """


def untyped(x):
    """Take anything.

    Args:
        x: Anything.
    """


def var_args(*names: str):
    """Take many.

    Args:
        names: Names.
    """


def evil_doc_type(x):
    """Docstring types are parsed, never run.

    Args:
        x (__import__('os').system('echo pwned')): Evil.
    """


def bad_default(x: dict = {"a": object()}):  # noqa: B006
    """Non-JSON default.

    Args:
        x: A dict.
    """


@pytest.mark.parametrize("fn,message", [
    (bad_type, "tool 'bad_type' parameter 'x' has unsupported type Opaque (pydantic: Unable to generate "
               "pydantic-core schema for <class 'test_tool_schema.Opaque'>"),
    (bad_callable, "tool 'bad_callable' parameter 'x' has unsupported type Callable[[int], int] (pydantic: "),
    (untyped, "tool 'untyped' parameter 'x' has no type: annotate it (x: str)"),
    (var_args, "tool 'var_args' parameter 'names': *args/**kwargs cannot be described"),
    (evil_doc_type, "tool 'evil_doc_type' parameter 'x' has unsupported type \"__import__("),
    (bad_default, "tool 'bad_default' parameter 'x': default {'a': <object object"),
], ids=lambda v: v.__name__ if callable(v) else "")
def test_registration_error_names_function_and_parameter(fn, message):
    with pytest.raises(ToolSchemaError) as info:
        fc_register("schema_errors")(fn)
    assert str(info.value).startswith(message)
    assert fn.__name__ not in registered_tools("schema_errors")


def test_duplicate_name_in_one_group_is_an_error():
    def lookup(key: str):
        """Look a key up.

        Args:
            key: The key.
        """

    fc_register("dup_group")(lookup)
    other = lookup

    def lookup(key: str):  # noqa: F811 - a second function with the same name
        """Look a key up elsewhere.

        Args:
            key: The key.
        """

    with pytest.raises(ToolSchemaError, match="group 'dup_group' already has a tool named 'lookup'"):
        fc_register("dup_group")(lookup)
    assert registered_tools("dup_group")["lookup"].fn is other
    fc_register("dup_group_2")(lookup)  # another group is fine


def test_register_returns_the_function_and_resolves_by_name():
    def triple(x: int) -> int:
        """Triple a number.

        Args:
            x: The number.
        """
        return 3 * x

    assert fc_register("resolve_group")(triple) is triple
    assert triple(2) == 6
    [tool] = resolve_tools(["resolve_group.triple"])
    assert tool.fn is triple and tool.group == "resolve_group"
    assert resolve_tools([triple])[0] is tool


def test_unknown_tool_name_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"tool 'no_such_tool' is not registered \(registered: .*"
                                         r"\); decorate it with @fc_register"):
        resolve_tools(["no_such_tool"])


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("fn,arguments,message", [
    (seed_weather, {"unit": "celsius"}, "missing required argument 'location'"),
    (seed_weather, {"location": "Paris", "unit": "kelvin"},
     "'unit' must be one of \"fahrenheit\", \"celsius\", got \"kelvin\""),
    (seed_weather, {"location": 3}, "'location' must be a string, got 3"),
    (seed_weather, {"location": "Paris", "city": "x", "zip": 1},
     "unknown arguments 'city', 'zip' (parameters: location, unit)"),
    (seed_forecast, {"location": "Paris", "num_days": "3"}, "'num_days' must be an integer, got \"3\""),
    (seed_forecast, {"location": "Paris", "num_days": True}, "'num_days' must be an integer, got true"),
    (seed_forecast, {"location": "Paris", "num_days": 2.5}, "'num_days' must be an integer, got 2.5"),
    (primitives, {"s": "a", "i": 1, "f": "x"}, "'f' must be a number, got \"x\""),
    (containers, {"tags": ["a", 2], "matrix": [[1], ["x"]], "meta": [], "scores": {"a": "b"}},
     "'tags[1]' must be a string, got 2; 'matrix[1][0]' must be an integer, got \"x\"; "
     "'meta' must be an object, got []; 'scores.a' must be a number, got \"b\""),
    (enums, {"color": "green"}, "'color' must be one of \"red\", \"blue\", got \"green\""),
    (enums, {"color": "red", "flag": 2}, "'flag' must be one of true, 1, got 2"),
    (enums, {"color": "red", "flag": False}, "'flag' must be one of true, 1, got false"),
    (enums, {"color": "red", "mode": "c"}, "'mode' must be one of \"a\", \"b\", null, got \"c\""),
])
def test_validation_rejects(fn, arguments, message):
    with pytest.raises(ToolArgumentError) as info:
        validate_arguments(build_tool_spec(fn), arguments)
    assert str(info.value) == message


def test_validation_accepts_and_converts_enums():
    spec = build_tool_spec(enums)
    assert validate_arguments(spec, {"color": "blue", "level": 2, "mode": None, "flag": True}) == {
        "color": Color.BLUE, "level": Level.HIGH, "mode": None, "flag": True}
    assert validate_arguments(build_tool_spec(optionals), {"a": None, "d": ["x"]}) == {
        "a": None, "d": ["x"]}
    assert validate_arguments(build_tool_spec(primitives), {"s": "", "i": 0, "f": 1}) == {
        "s": "", "i": 0, "f": 1}


@pytest.mark.parametrize("raw,message", [
    ('{"location": "Paris"', "the arguments are not valid JSON (Expecting ',' delimiter at "
                             "position 20): {\"location\": \"Paris\""),
    ('["Paris"]', "the arguments must be a JSON object, got [\"Paris\"]"),
])
def test_malformed_arguments(raw, message):
    with pytest.raises(ToolArgumentError) as info:
        parse_arguments(raw)
    assert str(info.value) == message


def test_arguments_may_be_already_parsed_or_empty():
    assert parse_arguments({"a": 1}) == {"a": 1}
    assert parse_arguments("") == {}
    assert parse_arguments(None) == {}


def test_a_callable_object_is_described_from_its_class_docstring_and_call_signature():
    class Adder:
        """Add a number.

        Args:
            x: The number.
        """

        def __call__(self, x: int) -> int:
            return x + 1

    assert build_tool_spec(Adder(), name="adder").schema["function"] == {
        "name": "adder", "description": "Add a number.",
        "parameters": {"type": "object", "required": ["x"],
                       "properties": {"x": {"type": "integer", "description": "The number."}}}}
    with pytest.raises(ToolSchemaError, match="has no usable name: pass name='my_tool'"):
        build_tool_spec(Adder())


# --- structured types: pydantic converts and checks them ----------------------------------

GOOD_STRUCTURED = {"address": {"street": "Main", "zip": 1}, "person": {"name": "Ann"},
                   "at": {"x": 1, "y": 2.5}, "day": "2024-02-29", "when": "2024-02-29T10:00:00",
                   "key": "k"}


def test_validation_converts_structured_values_to_their_types():
    assert validate_arguments(build_tool_spec(structured), GOOD_STRUCTURED) == {
        "address": {"street": "Main", "zip": 1}, "person": Person(name="Ann"), "at": Point(1.0, 2.5),
        "day": datetime.date(2024, 2, 29), "when": datetime.datetime(2024, 2, 29, 10), "key": "k"}


@pytest.mark.parametrize("bad,message", [
    ({"day": "yesterday"},
     "'day': Input should be a valid date in the format YYYY-MM-DD, input is too short, got \"yesterday\""),
    ({"address": {"street": "Main", "zip": "x", "city": "P"}},
     "'address.zip' must be an integer, got \"x\"; 'address.city' is not a known field"),
    ({"person": {"age": 3}}, "'person.name' is missing"),
    ({"at": [1, 2]}, "'at' must be an object, got [1, 2]"),
    ({"key": 1.5}, "'key' must be an integer or a string, got 1.5"),
])
def test_validation_of_structured_values_names_the_path(bad, message):
    with pytest.raises(ToolArgumentError) as info:
        validate_arguments(build_tool_spec(structured), {**GOOD_STRUCTURED, **bad})
    assert str(info.value) == message


def test_one_line_docstring_with_require_docs_false():
    def ping(host: str):
        """Ping a host."""

    assert build_tool_spec(ping, require_docs=False).schema["function"] == {
        "name": "ping", "description": "Ping a host.",
        "parameters": {"type": "object", "required": ["host"],
                       "properties": {"host": {"type": "string"}}}}
    with pytest.raises(ToolSchemaError, match="tool 'ping' parameter 'host' has no description"):
        build_tool_spec(ping)
