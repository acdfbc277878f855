"""The names of the raw input formats, declared once. No imports: the config loads this before Spark."""

LASTFM_TSV = "lastfm-tsv"
LISTENBRAINZ_JSONL = "listenbrainz-jsonl"
FEEDBACK_JSONL = "feedback-jsonl"

# Formats of listening records (bronze.listens); feedback is a stream of its own (silver.feedback).
LISTEN_FORMATS = (LASTFM_TSV, LISTENBRAINZ_JSONL)
FEEDBACK_EVENTS = ("like", "dislike", "skip")
