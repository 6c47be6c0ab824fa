"""argparse types shared by the sub-commands."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Sequence

from ..engine.checks import parse_positive_ints


def int_list(text: str) -> list[int]:
    """argparse type for ``--rates 4,8`` and other comma-separated positive ints."""
    try:
        return parse_positive_ints(text, "the value")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def name_list(text: str) -> list[str]:
    """argparse type for ``--packages numpy,scipy``: comma-separated names, empty parts dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def attribute_docs(cls: type) -> dict[str, str]:
    """The docstrings written under a dataclass's fields (``x: int = 1`` then ``\"\"\"...\"\"\"``), by field name."""
    import ast
    import inspect
    import itertools
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in itertools.pairwise(body):
            is_doc = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_doc:
                docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def dataclass_options(*types: type, exclude: Sequence[str] = ()) -> argparse.ArgumentParser:
    """A parent parser with one ``--flag`` per field of each dataclass, made by ``transformers.HfArgumentParser``.

    So no field lacks a flag and none drifts from its dataclass. Each field's docstring is its help. A field
    that holds another dataclass (`TrainConfig.gmsa`) is given by that dataclass's own flags, and ``exclude``
    names fields set otherwise (e.g. by the sub-command). Every flag is optional and absent from the parsed
    namespace unless given, so that flags override a YAML file and the dataclass's defaults fill the rest;
    list fields take ``4 8`` or ``4,8``.
    """
    from transformers import HfArgumentParser

    flat: list[type] = []
    docs: dict[str, str] = {}
    for kind in types:
        hints = typing.get_type_hints(kind)
        kept = [
            f for f in dataclasses.fields(kind) if f.name not in exclude and not dataclasses.is_dataclass(hints[f.name])
        ]
        # a copy of the dataclass with the types resolved and only the fields that become flags
        flat.append(dataclasses.make_dataclass(kind.__name__, [(f.name, hints[f.name], _copy(f)) for f in kept]))
        docs.update(attribute_docs(kind))
    parser = HfArgumentParser(flat, add_help=False)
    for action in parser._actions:
        if action.option_strings and not action.help and action.const is not False:
            default = "" if action.default is None else f" (default: {action.default})"
            action.help = (docs.get(action.dest, "") + default).strip().replace("%", "%%")
        if action.nargs == "+" and action.type in (int, str):
            action.type = _comma_list(action.type)
        action.required = False
        action.default = argparse.SUPPRESS
    return parser


def _copy(field: dataclasses.Field) -> dataclasses.Field:
    if field.default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=field.default_factory)
    return dataclasses.field(default=field.default)


def given_options(args: argparse.Namespace, *types: type) -> dict[str, object]:
    """The fields of ``types`` that were given on the command line (comma-separated list items flattened)."""
    names = {f.name for kind in types for f in dataclasses.fields(kind)}
    given = {}
    for name, value in vars(args).items():
        if name in names:
            is_nested = isinstance(value, list) and any(isinstance(v, list) for v in value)
            given[name] = [x for v in value for x in v] if is_nested else value
    return given


def _comma_list(item_type: type) -> object:
    def parse(text: str) -> list:
        return int_list(text) if item_type is int else name_list(text)

    parse.__name__ = item_type.__name__
    return parse
