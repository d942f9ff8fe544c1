"""A scale corpus: N tracks built from the real GTZAN tracks by label-preserving audio transforms.

Its only use is measuring cost (time and memory per stage as N grows); accuracy on it means nothing,
because a variant is its source slightly pitched, stretched, louder or brighter. The corpus is laid
out as the shared source is (`genres/<genre>/<genre>.NNNNN.flac` + `splits/sturm_artist_groups.csv`),
so `data.source` (or GTZAN_SOURCE) takes it like any other source, and ingest reads its artist groups:
a variant keeps its source's genre and artist group, so no grouped split puts a variant and its source
on two sides. Variant round r of source `<genre>.000NN` is `<genre>.{100 r + NN}` (r >= 1): never a real
GTZAN id (00000-00099) and never another variant's, for up to 999 rounds (99,900 variants per genre).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .ingest import GROUPS_FILE, discover_tracks, source_artist_groups
from .io import atomic_dir, write_csv

GTZAN_NUMBERS = 100  # real ids are <genre>.00000 .. <genre>.00099
MAX_ROUNDS = 999  # 5-digit ids: 100 * 999 + 99 = 99,999
PROVENANCE_FILE = "scale_manifest.csv"  # track, genre, source, round, transforms: how each file was made


@dataclass(frozen=True)
class TransformSettings:
    """params.scale.transforms: the ranges each variant's random transforms are drawn from."""

    pitch_semitones: tuple[float, float]
    stretch_rate: tuple[float, float]
    gain_db: tuple[float, float]
    eq_gain: tuple[float, float]
    eq_corner_hz: tuple[float, float]
    p_pitch: float
    p_stretch: float
    peak_limit: float

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "TransformSettings":
        raw: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in params["scale"]["transforms"].items()
        }
        return cls(**raw)


def plan_corpus(*, sources: pd.DataFrame, tracks: int, seed: int) -> pd.DataFrame:
    """track, genre, source, round, seed, artist_group: the real tracks (round 0) first, then variants cycling
    over the sources in a fixed order, so a smaller corpus is a prefix of a larger one."""
    if tracks < 1:
        raise ConfigError(f"scale corpus: --tracks must be at least 1, not {tracks}")
    rounds = -(-tracks // len(sources))
    if rounds - 1 > MAX_ROUNDS:
        raise ConfigError(f"scale corpus: {tracks} tracks need {rounds - 1} variant rounds (max {MAX_ROUNDS})")
    rows = []
    for index in range(tracks):
        round_, source = divmod(index, len(sources))
        row = sources.iloc[source]
        number = int(row["track"].split(".")[1])
        rows.append(
            {
                "track": f"{row['genre']}.{GTZAN_NUMBERS * round_ + number:05d}",
                "genre": row["genre"],
                "source": row["track"],
                "round": round_,
                "seed": seed * 1_000_003 + index,  # one independent random stream per corpus position
                "artist_group": row["artist_group"],
            }
        )
    return pd.DataFrame(rows)


def read_sources(*, root: Path, genres: list[str]) -> pd.DataFrame:
    """The real tracks under `root` (track, genre, path, artist_group), in genre-interleaved order so any
    prefix keeps the genre mix. A track without a known artist becomes its own group (`track:<id>`)."""
    tracks = discover_tracks(root, genres=genres, extensions=["flac", "wav", "au"])
    if (tracks["track"].str.split(".").str[1].astype(int) >= GTZAN_NUMBERS).any():
        raise DataError(f"{root}: holds ids >= {GTZAN_NUMBERS}; build a corpus from the real GTZAN tracks only")
    groups = source_artist_groups(root)
    tracks["artist_group"] = [groups.get(track) or f"track:{track}" for track in tracks["track"]]
    tracks["rank"] = tracks.groupby("genre").cumcount()
    return tracks.sort_values(["rank", "genre"]).drop(columns="rank").reset_index(drop=True)


def eq_filter(*, y: np.ndarray, sr: int, corner_hz: float, gain: float, kind: str) -> np.ndarray:
    """A shelving EQ: the band below (low) or above (high) the corner, scaled by 1 + gain and added back."""
    from scipy.signal import butter, sosfilt

    sos = butter(2, corner_hz, btype="lowpass" if kind == "low" else "highpass", fs=sr, output="sos")
    return y + gain * sosfilt(sos, y)


def transform(
    *, y: np.ndarray, sr: int, rng: np.random.Generator, settings: TransformSettings
) -> tuple[np.ndarray, str]:
    """One variant of `y`: optional pitch shift and time stretch, then two-band EQ and gain; the length is
    kept (stretch output trimmed or zero-padded) so the duration check sees a normal 30-s clip."""
    import librosa

    steps, done = [], y
    if rng.random() < settings.p_pitch:
        semitones = float(rng.uniform(*settings.pitch_semitones))
        done, steps = librosa.effects.pitch_shift(done, sr=sr, n_steps=semitones), [f"pitch{semitones:+.2f}st"]
    if rng.random() < settings.p_stretch:
        rate = float(rng.uniform(*settings.stretch_rate))
        done = librosa.util.fix_length(librosa.effects.time_stretch(done, rate=rate), size=len(y))
        steps.append(f"stretch{rate:.3f}")
    for kind, corner in zip(("low", "high"), settings.eq_corner_hz):
        gain = float(rng.uniform(*settings.eq_gain))
        done = eq_filter(y=done, sr=sr, corner_hz=corner, gain=gain, kind=kind)
        steps.append(f"eq_{kind}{gain:+.2f}")
    gain_db = float(rng.uniform(*settings.gain_db))
    done = done * 10.0 ** (gain_db / 20.0)
    peak = float(np.abs(done).max()) if done.size else 0.0
    if peak > settings.peak_limit:  # never clip: validation would flag it, and real uploads rarely clip
        done = done * (settings.peak_limit / peak)
    return done.astype(np.float32), " ".join([*steps, f"gain{gain_db:+.1f}dB"])


def write_variant(*, source: str, target: str, seed: int, settings: TransformSettings) -> str:
    """Read the source at its own rate, transform it, write 16-bit FLAC at that rate; the transform chain."""
    import soundfile as sf

    y, sr = sf.read(source, dtype="float32", always_2d=False)
    if y.ndim > 1:
        y = y.mean(axis=1)
    done, chain = transform(y=y, sr=sr, rng=np.random.default_rng(seed), settings=settings)
    sf.write(target, done, sr, subtype="PCM_16", format="FLAC")
    return chain


def build_corpus(*, params: dict[str, Any], source: Path, out: Path, tracks: int) -> pd.DataFrame:
    """Write an N-track corpus into `out` (replaced whole): real tracks copied, variants generated in
    parallel (params.scale.n_jobs), the groups file and the provenance table. Returns the provenance."""
    from joblib import Parallel, delayed

    sources = read_sources(root=source, genres=params["genres"])
    plan = plan_corpus(sources=sources, tracks=tracks, seed=params["scale"]["seed"])
    paths = dict(zip(sources["track"], sources["path"]))
    settings = TransformSettings.from_params(params)
    with atomic_dir(out) as folder:
        targets = [folder / "genres" / g / f"{t}.flac" for g, t in zip(plan["genre"], plan["track"])]
        for genre in plan["genre"].unique():
            (folder / "genres" / genre).mkdir(parents=True)
        jobs = [
            delayed(_make_track)(
                source=str(paths[source]), target=str(target), round_=round_, seed=seed, settings=settings
            )
            for source, round_, seed, target in zip(plan["source"], plan["round"], plan["seed"], targets)
        ]
        plan["transforms"] = Parallel(n_jobs=params["scale"]["n_jobs"])(jobs)
        _write_groups(folder=folder, plan=plan)
        write_csv(folder / PROVENANCE_FILE, plan.drop(columns="seed"))
    return plan


def _make_track(*, source: str, target: str, round_: int, seed: int, settings: TransformSettings) -> str:
    """Round 0 is the real track, copied as is (a FLAC source keeps its bytes, so its hash); others are variants."""
    if round_ == 0 and source.lower().endswith(".flac"):
        shutil.copyfile(source, target)
        return "original"
    return write_variant(source=source, target=target, seed=seed, settings=settings)


def _write_groups(*, folder: Path, plan: pd.DataFrame) -> None:
    """splits/sturm_artist_groups.csv as the shared source has it; ingest reads it before its packaged copy."""
    table = pd.DataFrame(
        {
            "track": plan["track"],
            "genre": plan["genre"],
            "artist_group_id": plan["artist_group"],
            "in_foleiss_filtered": 0,  # variants are in no published split
        }
    )
    (folder / GROUPS_FILE).parent.mkdir(parents=True, exist_ok=True)
    write_csv(folder / GROUPS_FILE, table)


def check_output(*, out: Path, source: Path) -> None:
    """Refuse to write into the source or over a folder that is not a corpus (a typo must not delete data)."""
    out, source = out.resolve(), source.resolve()
    if out == source or source.is_relative_to(out) or out.is_relative_to(source):
        raise ConfigError(f"scale corpus: --out {out} must lie outside the source {source}")
    if out.exists() and any(out.iterdir()) and not (out / PROVENANCE_FILE).is_file():
        raise ConfigError(f"scale corpus: {out} exists and is not a scale corpus ({PROVENANCE_FILE} missing)")
    if not os.access(out.parent if not out.exists() else out, os.W_OK):
        raise ConfigError(f"scale corpus: {out} is not writable")
