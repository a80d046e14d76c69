"""The recipe's options as click flags: one flag per option, generated from the
recipe dataclasses' field metadata, so a recipe key and its flag cannot drift apart."""

from __future__ import annotations

import click

from edgeprune.recipe import option_fields


def _recipe_key(section, f) -> str:
    return f"{section}.{f.name}" if section else f.name


def _click_option(section, f):
    meta = f.metadata
    kwargs: dict = {"default": None, "help": meta["help"]}
    dest = _recipe_key(section, f).replace(".", "__")
    if str(f.type).startswith("bool"):
        # A switch: absent leaves the recipe's value (False never overrides it).
        kwargs.update(is_flag=True, default=False)
    elif meta.get("choices"):
        kwargs["type"] = click.Choice(meta["choices"])
    elif meta.get("kind") == "pair":
        kwargs["type"] = str
        kwargs["metavar"] = "A:B"
    elif "tuple[str" in str(f.type):
        kwargs["multiple"] = True
        kwargs["default"] = ()
        kwargs["metavar"] = "NAME"
    elif str(f.type).startswith("int"):
        kwargs["type"] = int
    elif str(f.type).startswith("float"):
        kwargs["type"] = float
    kwargs["help"] += f"  [recipe: {_recipe_key(section, f)}]"
    return click.option(meta["flag"], dest, **kwargs)


def recipe_options(sections: tuple[str | None, ...]):
    """Decorator adding one flag per recipe option of ``sections``."""

    def decorate(fn):
        for section, f in reversed(option_fields()):
            if section in sections:
                fn = _click_option(section, f)(fn)
        return fn

    return decorate


def _overrides(kwargs: dict) -> dict:
    out = {}
    top_level = {f.name for section, f in option_fields() if section is None}
    for key in list(kwargs):
        if "__" in key or key in top_level:
            value = kwargs.pop(key)
            if value is None or value == () or value is False:
                continue
            out[key.replace("__", ".")] = list(value) if isinstance(value, tuple) else value
    return out


def recipe_from(recipe_path: str | None, kwargs: dict):
    """The recipe at ``recipe_path`` (defaults if None) under the flags in ``kwargs``
    (consumed: the recipe's flags are popped)."""
    from edgeprune.recipe import load_recipe

    return load_recipe(recipe_path, _overrides(kwargs))
