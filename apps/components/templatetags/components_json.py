"""Filters for rendering decoded SUIT structures (envelope_to_json output) as nested tables."""

from django import template

register = template.Library()


@register.filter
def json_kind(value) -> str:
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, (list, tuple)):
        return "list"
    return "scalar"


@register.filter
def is_command_sequence(value) -> bool:
    """A SUIT command sequence as envelope_to_json writes it: [{command, argument}, ...]."""
    return bool(value) and all(
        isinstance(item, dict) and set(item) == {"command", "argument"} for item in value
    )


@register.filter
def is_component_id(value) -> bool:
    """A component id as envelope_to_json writes it: a list of texts ('ta', "h'8d82...'")."""
    return bool(value) and all(isinstance(item, str) for item in value)


@register.filter
def humanize_key(key) -> str:
    return str(key).replace("_", " ")
