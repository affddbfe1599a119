"""The one exception type a user can cause (wrong directory, unknown figure name, no records).

The CLI prints it as a single sentence that names the fix, with no traceback; anything else that
escapes is a bug and keeps its traceback.
"""


class AnalysisError(Exception):
    """A problem the user can fix; its message is one sentence that says how."""
