"""Name normalisation: Unicode normal form, trimmed, inner whitespace collapsed.

Spark has no built-in Unicode normalisation, so that one step is a vectorised pandas UDF; the
rest are built-in expressions. `name_key` is the comparison form used for track identity.
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf


@lru_cache(maxsize=None)
def _normalizer(form: str):
    @pandas_udf("string")
    def unicode_normalize(names: pd.Series) -> pd.Series:
        return names.map(lambda s: unicodedata.normalize(form, s) if isinstance(s, str) else s)
    return unicode_normalize


def normalize_name(col: Column, form: str = "NFKC") -> Column:
    """Display form of a name: Unicode `form`, no leading/trailing/double whitespace; null if empty."""
    # (?U): Unicode whitespace too (no-break, ideographic spaces), not only ASCII.
    cleaned = F.trim(F.regexp_replace(_normalizer(form)(col), r"(?U)\s+", " "))
    return F.when(cleaned == "", F.lit(None).cast("string")).otherwise(cleaned)


def name_key(normalized: Column) -> Column:
    """Comparison form of an already normalised name: case-folded, empty for null."""
    return F.lower(F.coalesce(normalized, F.lit("")))
