"""The predictions store: one parquet partition per batch, written atomically, read back as one table.

Layout: <store>/predictions/batch=<id>/part.parquet and <store>/features/batch=<id>/part.parquet
(track-level features of the scored files), so a restart loses nothing and a half-written batch
never appears.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from monitoring.batch import check_batch_id
from musicgenre.io import write_parquet

PART = "part.parquet"


def partition(*, store: Path, table: str, batch_id: str) -> Path:
    return Path(store) / table / f"batch={check_batch_id(batch_id)}" / PART


def write_batch(*, store: Path, table: str, batch_id: str, frame: pd.DataFrame) -> Path:
    """Write (or replace, when a batch is re-scored) one batch's partition."""
    target = partition(store=store, table=table, batch_id=batch_id)
    write_parquet(target, frame.assign(batch_id=batch_id))
    return target


def read_table(*, store: Path, table: str, batch_id: str | None = None) -> pd.DataFrame:
    """Every batch of a table (or one batch), oldest batch first; empty when nothing is stored."""
    folder = Path(store) / table
    pattern = f"batch={check_batch_id(batch_id)}/{PART}" if batch_id else f"batch=*/{PART}"
    parts = sorted(folder.glob(pattern))
    if not parts:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)
