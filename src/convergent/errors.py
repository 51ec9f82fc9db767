"""One exception type for every bad input: the CLI prints its message on one line, exit 2."""


class ConvergentError(ValueError):
    """Bad input (file, shape, values, config): the message names the input and the problem."""
