"""User-facing errors: one clear line, never a traceback."""


class DeltaInfError(Exception):
    """A problem the user can fix (bad option, missing data, damaged file).

    The message names the problem and the fix; the CLI prints it as one line and exits 2,
    the app shows it with ``st.error``.
    """


class ConfigError(DeltaInfError, ValueError):
    """An option value that is out of range or unknown."""


class DataError(DeltaInfError):
    """Missing, unreadable or wrongly laid out data."""


class CheckpointError(DeltaInfError):
    """A weights file that is corrupt or belongs to another architecture."""


class CacheError(DeltaInfError):
    """A cache directory that cannot be used."""


class ModelError(DeltaInfError):
    """Model code that fails to import or to build, or a model the engine cannot investigate."""
