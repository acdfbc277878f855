"""Column-level logic: Spark Column expressions and pandas UDFs, pure and unit-tested.
Nothing here opens a session or knows a table path."""
