"""Name normalisation: Unicode normal form, trimmed, inner whitespace collapsed.

Spark SQL has no Unicode normalisation function, but Spark ships ICU4J (for collations), and
`java_method` calls its static `com.ibm.icu.text.Normalizer.compose(String, boolean compat)` in the
JVM: compat true is NFKC, false is NFC. That keeps the whole name pipeline in the JVM (a pandas UDF
here cost a Python worker and an Arrow round trip per task). `name_key` is the comparison form used
for track identity.
"""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

FORMS = {"NFC": False, "NFKC": True}  # clean.unicode_form -> ICU's compat flag


def unicode_normalize(col: Column, form: str = "NFKC") -> Column:
    """`col` in Unicode normal form `form` (NFC or NFKC); null stays null."""
    if form not in FORMS:
        raise ValueError(f"unicode form {form!r} is not one of {', '.join(FORMS)}")
    composed = F.call_function("java_method", F.lit("com.ibm.icu.text.Normalizer"), F.lit("compose"), col,
                               F.lit(FORMS[form]))
    return F.when(col.isNotNull(), composed)  # ICU throws on null


def normalize_name(col: Column, form: str = "NFKC") -> Column:
    """Display form of a name: Unicode `form`, no leading/trailing/double whitespace; null if empty."""
    # (?U): Unicode whitespace too (no-break, ideographic spaces), not only ASCII.
    cleaned = F.trim(F.regexp_replace(unicode_normalize(col, form), r"(?U)\s+", " "))
    return F.when(cleaned == "", F.lit(None).cast("string")).otherwise(cleaned)


def name_key(normalized: Column) -> Column:
    """Comparison form of an already normalised name: case-folded, empty for null."""
    return F.lower(F.coalesce(normalized, F.lit("")))
