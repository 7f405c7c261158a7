"""The one exception type for mistakes a user can fix (bad flag, missing file, unknown name).

The CLI turns it into a one-line message and exit code 2; the server will turn it into a 4xx.
Anything else escaping is a bug and keeps its traceback.
"""


class PersonalignError(ValueError):
    """A user-facing error whose message is one line that says what to do instead."""
