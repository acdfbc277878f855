"""Infrastructure every stage shares: config, session, tables and paths, Delta I/O, errors,
raw-file discovery, bookkeeping, launch. Nothing here knows what a stage computes."""
