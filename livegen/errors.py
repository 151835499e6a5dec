"""Errors a user can fix. The CLI prints them as one line on stderr and exits non-zero."""


class UserError(Exception):
    """Bad input (a port name, a checkpoint, a control script, a data folder): say what to do."""
