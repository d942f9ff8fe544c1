"""`predict` CLI on real shared audio with a registry champion, and behavioural stability checks."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
from typer.testing import CliRunner

from musicgenre.evaluation import proba_columns
from musicgenre.predict import EXIT_FAILED, EXIT_OK, EXIT_USAGE, app
from musicgenre.registry import load_champion

# behaviour under inaudible-to-genre changes: share of tracks whose top-1 must not move, and the
# largest mean absolute probability change tolerated
MIN_TOP1_AGREEMENT = 0.8
MAX_MEAN_PROBA_CHANGE = 0.1


def run(registry, *args):
    return CliRunner().invoke(app, [*map(str, args), "--tracking-uri", registry["uri"]])


def test_json_top3_on_real_gtzan_and_modern_files(registry, gtzan_slice, modern_clips):
    files = [*gtzan_slice["abs_path"][:3], modern_clips[0]]
    result = run(registry, *files, "--json")
    assert result.exit_code == EXIT_OK, result.output
    records = json.loads(result.stdout)
    assert [r["path"] for r in records] == [str(f) for f in files]
    for record in records:
        probabilities = [p["probability"] for p in record["top"]]
        assert len(record["top"]) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert set(p["genre"] for p in record["top"]) <= set(registry["params"]["genres"])
        assert 0.0 < sum(probabilities) <= 1.0 + 1e-3
        # the split-conformal set: never empty, led by the top genre, every genre in it at least as
        # probable as any genre outside it
        assert record["set"] and record["set"][0] == record["top"][0]["genre"]
        assert set(record["set"]) <= set(registry["params"]["genres"])
        listed = {p["genre"]: p["probability"] for p in record["top"]}
        outside = [listed[g] for g in listed if g not in record["set"]]
        assert all(listed[g] >= max(outside, default=0.0) for g in record["set"] if g in listed)


def test_champion_distribution_on_modern_clip(registry, modern_clips):
    model = load_champion(tracking_uri=registry["uri"], params=registry["params"])
    out = model.predict(pd.DataFrame({"path": [str(modern_clips[-1])]}))
    proba = out[proba_columns(registry["params"]["genres"])].to_numpy()
    assert proba.shape == (1, 10) and np.allclose(proba.sum(axis=1), 1.0) and (proba >= 0).all()


def test_folder_recursion_any_rate_and_channels_with_a_bad_file(registry, gtzan_slice, tmp_path):
    y, rate = sf.read(gtzan_slice["abs_path"][0])
    nested = tmp_path / "in" / "deeper"
    nested.mkdir(parents=True)
    stereo = librosa.resample(y, orig_sr=rate, target_sr=44100)
    sf.write(nested / "stereo44k.wav", np.stack([stereo, stereo * 0.5], axis=1), 44100)
    sf.write(tmp_path / "in" / "short.flac", y[: rate // 2], rate)  # 0.5 s: below limits.min_duration_s
    (tmp_path / "in" / "notes.txt").write_text("not audio, not an audio suffix: skipped")
    result = run(registry, tmp_path / "in", tmp_path / "missing.ogg", "--json")
    assert result.exit_code == EXIT_FAILED
    records = {r["path"]: r for r in json.loads(result.stdout)}
    assert set(records) == {
        str(nested / "stereo44k.wav"),
        str(tmp_path / "in" / "short.flac"),
        str(tmp_path / "missing.ogg"),
    }
    assert len(records[str(nested / "stereo44k.wav")]["top"]) == 3
    assert "short.flac" in records[str(tmp_path / "in" / "short.flac")]["error"]
    assert "below the minimum" in records[str(tmp_path / "in" / "short.flac")]["error"]
    assert "missing.ogg" in records[str(tmp_path / "missing.ogg")]["error"]


def test_table_output_and_usage_errors(registry, gtzan_slice, tmp_path):
    table = run(registry, gtzan_slice["abs_path"][0])
    assert table.exit_code == EXIT_OK and gtzan_slice["abs_path"][0].name in table.stdout.replace("\n", "")
    top = json.loads(run(registry, gtzan_slice["abs_path"][0], "--json").stdout)[0]["top"][0]["genre"]
    assert table.stdout.count(top) >= 2  # in the #1 column and again in the genre-set column
    no_model = run(registry, gtzan_slice["abs_path"][0], "--model-name", "no-such-model")
    assert no_model.exit_code == EXIT_USAGE and "no champion" in no_model.output
    (tmp_path / "empty").mkdir()
    assert run(registry, tmp_path / "empty").exit_code == EXIT_USAGE
    assert CliRunner().invoke(app, []).exit_code == EXIT_USAGE


def test_stable_under_gain_and_resampling_round_trip(registry, gtzan_slice, tmp_path):
    originals = list(gtzan_slice["abs_path"][::5])  # 6 real tracks across genres
    variants: dict[str, list[str]] = {"gain_-3dB": [], "resampled_44k_and_back": []}
    for path in originals:
        y, rate = sf.read(path, dtype="float32")
        sf.write(tmp_path / f"{path.stem}_gain.wav", y * 10 ** (-3 / 20), rate, subtype="FLOAT")
        up = librosa.resample(y, orig_sr=rate, target_sr=44100)
        sf.write(
            tmp_path / f"{path.stem}_rt.wav", librosa.resample(up, orig_sr=44100, target_sr=rate), rate, subtype="FLOAT"
        )
        variants["gain_-3dB"].append(str(tmp_path / f"{path.stem}_gain.wav"))
        variants["resampled_44k_and_back"].append(str(tmp_path / f"{path.stem}_rt.wav"))
    model = load_champion(tracking_uri=registry["uri"], params=registry["params"])
    columns = proba_columns(registry["params"]["genres"])
    everything = [str(p) for p in originals] + [p for paths in variants.values() for p in paths]
    out = model.predict(pd.DataFrame({"path": everything}))
    assert (out["error"] == "").all()
    base = out[columns].to_numpy()[: len(originals)]
    for offset, name in enumerate(variants, start=1):
        changed = out[columns].to_numpy()[offset * len(originals) : (offset + 1) * len(originals)]
        agreement = (changed.argmax(axis=1) == base.argmax(axis=1)).mean()
        assert agreement >= MIN_TOP1_AGREEMENT, f"{name}: top-1 agreement {agreement:.2f}"
        assert np.abs(changed - base).mean() <= MAX_MEAN_PROBA_CHANGE, name
