"""Erased users, recognised without keeping their ids: a salted SHA-256 of the user id.

`user_hash` is the Spark column form and `user_hash_of` the Python form of the same value (the id
normalised exactly as udfs.parse.user normalises a logged id: Unicode whitespace trimmed and runs
of it collapsed), so a hash computed from a command-line id matches the hash of the same user's
records in any table or raw line.
"""
from __future__ import annotations

import hashlib
import re

from pyspark.sql import Column
from pyspark.sql import functions as F

_WHITESPACE = re.compile(r"\s+")


def normalised_user(user_id: str) -> str:
    return _WHITESPACE.sub(" ", user_id).strip(" ")


def user_hash(user: Column, salt: str) -> Column:
    return F.sha2(F.concat(F.lit(salt), user), 256)


def user_hash_of(user_id: str, salt: str) -> str:
    return hashlib.sha256((salt + normalised_user(user_id)).encode("utf-8")).hexdigest()
