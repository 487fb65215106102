"""One exception type for bad input the user can fix.

The CLI turns an :class:`EdgeAppError` into a single line on stderr (``error: ...``) and exit code 2,
never a traceback. Raise it with a message naming the file, the field and what was expected.
"""


class EdgeAppError(Exception):
    """Bad input or environment the user can fix; printed as one line by the CLI."""
