"""The audio validation stage on small generated files with one fault each, and its band-limit
measure on real shared GTZAN tracks (native 22050 Hz vs upsampled from 16 kHz)."""
from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from musicgenre.audio import resample
from musicgenre.audio_checks import AudioCheckConfig, measure_track
from stages._cli import StageError
from stages.validate import validate

RATE = 22050
SECONDS = 2.0  # the fixture's "expected duration": short files keep the test fast


def _noise(*, seed: int, seconds: float = SECONDS, rate: int = RATE) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


@pytest.fixture(scope="module")
def faulty_set(tmp_path_factory) -> pd.DataFrame:
    """A manifest of generated files: two clean, and one per fault the suite must catch."""
    folder = tmp_path_factory.mktemp("audio")
    clean = _noise(seed=0)
    files = {  # track -> (genre, file name, samples or raw bytes)
        "blues.00000": ("blues", "blues.00000.wav", clean),
        "blues.00001": ("blues", "blues.00001.flac", clean),  # same samples, different container and bytes
        "jazz.00000": ("jazz", "jazz.00000.wav", _noise(seed=1)),
        "classical.00000": ("classical", "classical.00000.wav", np.zeros(int(SECONDS * RATE), np.float32)),
        "country.00000": ("country", "country.00000.wav", _noise(seed=2, seconds=SECONDS / 2)),
        # The real fault: a 16 kHz recording resampled to 22050 Hz has nothing above 8 kHz.
        "disco.00000": ("disco", "disco.00000.wav",
                        resample(_noise(seed=3, rate=16000), orig_sr=16000, target_sr=RATE)[: int(SECONDS * RATE)]),
        "polka.00000": ("polka", "polka.00000.wav", _noise(seed=4)),
        "hiphop.00000": ("hiphop", "hiphop.00000.wav", b"RIFF\x00\x00not really audio" * 50),
    }
    rows = []
    for track, (genre, name, content) in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            # Integer samples: libsndfile's float-to-16-bit rounding differs between WAV and FLAC writers.
            sf.write(path, np.round(content * 32767).astype(np.int16), RATE, subtype="PCM_16")
        rows.append({"track": track, "genre": genre, "path": str(path), "sha256": "", "duration_s": "",
                     "sample_rate": "", "channels": "", "bit_depth": "", "artist_group": "", "error": ""})
    return pd.DataFrame(rows)


def _params(base: dict, *, manifest: pd.DataFrame, tmp_path, all_warn: bool, **overrides) -> dict:
    """Project params pointed at tmp_path, with the fixture's expected duration."""
    params = copy.deepcopy(base)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    params["paths"].update(manifest=str(tmp_path / "manifest.csv"), validate_dir=str(tmp_path / "validate"),
                           tracks=str(tmp_path / "validate" / "tracks.csv"),
                           audio_validation=str(tmp_path / "report"))
    params["validate"].update(expected_duration_s=SECONDS, duration_tolerance_s=0.1, **overrides)
    if all_warn:
        params["validate"]["severity"] = {name: "warn" for name in params["validate"]["severity"]}
    return params


def test_each_fault_is_flagged_and_unusable_tracks_dropped(params, faulty_set, tmp_path):
    summary = validate(_params(params, manifest=faulty_set, tmp_path=tmp_path, all_warn=True))
    flagged = {name: check["tracks"] for name, check in summary["checks"].items()}
    assert flagged["duplicate_audio"] == ["blues.00000", "blues.00001"]
    assert flagged["silence"] == ["classical.00000"]
    assert flagged["duration"] == ["country.00000"]
    assert flagged["band_limited"] == ["disco.00000"]
    assert flagged["genre_in_labels"] == ["polka.00000"]
    assert flagged["decodes"] == ["hiphop.00000"]
    assert flagged["sample_rate"] == flagged["channels"] == flagged["clipping"] == []
    kept = pd.read_csv(tmp_path / "validate" / "tracks.csv", keep_default_na=False)
    # The first of the duplicate pair stays; undecodable and unknown-genre tracks can never be used.
    assert set(kept["track"]) == set(faulty_set["track"]) - {"blues.00001", "hiphop.00000", "polka.00000"}
    assert kept.set_index("track").loc["disco.00000", "is_band_limited"]  # flagged, kept by default
    assert list(kept.columns[: faulty_set.shape[1]]) == list(faulty_set.columns)
    measured = pd.read_csv(tmp_path / "validate" / "audio_checks.csv", keep_default_na=False).set_index("track")
    assert "hiphop.00000" in measured.loc["hiphop.00000", "decode_error"]
    assert measured.loc["blues.00001", "duplicate_of"] == "blues.00000"
    on_disk = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert on_disk["kept"] == len(kept) and on_disk["dropped"] == len(faulty_set) - len(kept)
    assert (tmp_path / "report" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").is_file()


def test_error_severity_stops_naming_expectation_and_tracks(params, faulty_set, tmp_path):
    with pytest.raises(StageError) as caught:
        validate(_params(params, manifest=faulty_set, tmp_path=tmp_path, all_warn=False))
    message = str(caught.value)
    for check, track in (("silence", "classical.00000"), ("decodes", "hiphop.00000"),
                         ("genre_in_labels", "polka.00000")):
        assert check in params["validate"]["severity"] and params["validate"]["severity"][check] == "error"
        line = next(line for line in message.splitlines() if f"'{check}'" in line)
        assert track in line
    assert not (tmp_path / "validate" / "tracks.csv").exists()  # nothing passes on as validated


def test_drop_policies_follow_params(params, faulty_set, tmp_path):
    summary = validate(_params(params, manifest=faulty_set, tmp_path=tmp_path, all_warn=True,
                               drop_band_limited=True, drop_duplicates=False))
    kept = set(pd.read_csv(tmp_path / "validate" / "tracks.csv")["track"])
    assert "disco.00000" not in kept and summary["dropped_tracks"]["band_limited"] == ["disco.00000"]
    assert {"blues.00000", "blues.00001"} <= kept


# The native tracks whose treble is weakest (lowest edge ratio when the threshold was tuned): the hard cases.
HARD_NATIVE = ["blues.00004", "blues.00007", "blues.00010", "blues.00033", "jazz.00008"]


def test_band_limit_separates_real_upsampled_from_native(params, gtzan_manifest):
    native = gtzan_manifest[gtzan_manifest["origin"] == "native_22050"]
    upsampled = gtzan_manifest[gtzan_manifest["origin"] == "upsampled_from_16k"]
    assert set(HARD_NATIVE) <= set(native["track"])
    sample = pd.concat([native[native["track"].isin(HARD_NATIVE)],
                        native.sample(5, random_state=params["seed"]),
                        upsampled.sample(8, random_state=params["seed"])])
    config = AudioCheckConfig.from_params(params)
    ratios = {row.track: measure_track(track=row.track, path=row.abs_path, config=config)["band_edge_ratio"]
              for row in sample.itertuples()}
    flagged = {track for track, ratio in ratios.items() if ratio < params["validate"]["band_limit_min_ratio"]}
    assert flagged == set(sample.loc[sample["origin"] == "upsampled_from_16k", "track"]), ratios
