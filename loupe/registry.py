"""Name -> implementation registries: one lookup, whose error lists the valid names."""


def choose(registry: dict, name: str, what: str):
    """Look ``name`` up in a registry dict; unknown names list the valid ones."""
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f'unknown {what} {name!r}; valid: {", ".join(sorted(registry))}') from None
