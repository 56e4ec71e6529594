"""Request parameters: a request overrides an executor's default under the same name."""
from typing import Optional

from loupe.errors import InvalidRequestError


def positive_int(parameters: Optional[dict], name: str, default: int) -> int:
    value = (parameters or {}).get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(f'{name} must be an integer, got {value!r}') from None
    if number <= 0:
        raise InvalidRequestError(f'{name} must be > 0, got {number}')
    return number
