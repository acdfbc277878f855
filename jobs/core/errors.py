"""Errors a user can act on, each with the exit code a scheduler sees.

0 success; 1 unexpected failure (trace in the log); 2 bad configuration or command line;
3 input missing or unusable (no raw files for the date, a table an upstream stage should have written);
4 the warehouse is busy: another run holds its lease (retry later); 5 the publish gate refused the
night's lists (yesterday's stay visible; the staged rows are kept for inspection); 6 the data quality
of the day is past a fail threshold (the date is not cleaned).
"""


class SetlistError(Exception):
    exit_code = 1


class ConfigError(SetlistError):
    """Bad configuration or command line: one line naming the file and the key."""
    exit_code = 2


class InputError(SetlistError):
    """The data a stage needs is not there (raw files, an upstream table)."""
    exit_code = 3


class NotEnoughHistory(InputError):
    """Too few days of plays for a stage yet (a model needs days before its validation window, say).
    The nightly run records the stage as waiting for history and goes on; a single job exits 3."""


class WarehouseBusy(SetlistError):
    """Another run holds the warehouse's single-writer lease (jobs.core.lease) past lease.wait_minutes."""
    exit_code = 4


class PublishRefused(SetlistError):
    """The night's lists failed a publish check: consumers keep seeing the previous night's."""
    exit_code = 5


class DataQualityFailed(SetlistError):
    """A data-quality measure of the day is past its fail threshold (alerts.*)."""
    exit_code = 6
