"""The one exception type the bundle engine raises for bad input or an unusable archive."""


class BundleError(Exception):
    """A bundle could not be built or read; ``code`` is stable and snake_case, ``path`` names the file concerned."""

    def __init__(self, code: str, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" + (f" ({self.path})" if self.path else "")
