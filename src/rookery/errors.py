"""Every failure a user can act on is a RookeryError whose message is one sentence.

The CLI prints the message and exits with status 1; the server maps it to a 4xx.
"""


def first_line(error: BaseException, limit: int = 200) -> str:
    """An exception's first line (a library's message can run to pages), else its type's name; at most `limit`
    characters: what goes in parentheses after a one-sentence error."""
    return (next(iter(str(error).strip().splitlines()), "") or type(error).__name__)[:limit]


class RookeryError(Exception):
    """Base class: a failure caused by input, configuration or environment, not by a bug."""


class InputError(RookeryError):
    """Bad input data: a corrupt image, a mismatched pair, a malformed annotation file."""


class ConfigError(RookeryError):
    """Bad configuration: an invalid setting, a missing class in classes.yaml."""


class MissingExtraError(RookeryError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed; install it with: pip install 'rookery[{extra}]'")
        self.package = package
        self.extra = extra
