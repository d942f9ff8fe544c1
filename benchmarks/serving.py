"""Serving numbers for BENCHMARKS.md: warm predict latency of the registry's champion, where its time
goes, the latency of every trained model through the same path, and the pretrained tagger's
arithmetic (the floor under a transfer champion's latency)."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from musicgenre.audio import read_native, resample
from musicgenre.config import resolve
from musicgenre.extraction import Limits, extract_file
from musicgenre.features import FeatureConfig, extract


def warm_time(fn: Callable[[], Any], repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds of `repeats` calls after one warm-up call; `clock=time.process_time` gives the
    CPU time, which waiting for a core shared with other users does not inflate."""
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return float(np.median(times))


def champion_latency(params: dict[str, Any], clips: list[str], repeats: int) -> dict[str, Any]:
    """Warm latency of one clip and batch throughput of the champion loaded from the registry."""
    from musicgenre.registry import load_champion
    model = load_champion(params=params)
    one = pd.DataFrame({"path": clips[:1]})
    latency = warm_time(lambda: model.predict(one), repeats)
    start = time.perf_counter()
    model.predict(pd.DataFrame({"path": clips}))
    predictor = model.unwrap_python_model().predictor
    return {"model": type(predictor).__name__, "input": predictor.input, "latency_s": latency,
            "batch_clips_per_s": len(clips) / (time.perf_counter() - start), "predictor": predictor}


def predict_steps(predictor: Any, params: dict[str, Any], clip: str, repeats: int
                  ) -> tuple[list[tuple[str, float]], int]:
    """Warm wall seconds of each step the pyfunc runs for one clip with this predictor, and the
    number of tagger patches in the clip (0 for a model without the tagger)."""
    config, limits = FeatureConfig.from_params(params), Limits.from_params(params)
    samples, rate = read_native(clip)
    mono = samples.mean(axis=1, dtype=np.float64)
    steps, n_patches = [("decode (libsndfile)", lambda: read_native(clip))], 0
    if predictor.needs_features:
        y = resample(mono, orig_sr=rate, target_sr=config.sample_rate)
        steps += [(f"resample to {config.sample_rate} Hz", lambda: resample(mono, orig_sr=rate,
                                                                          target_sr=config.sample_rate)),
                  ("classic features (extract)", lambda: extract(y, config=config))]
    if predictor.embedding is not None:
        from musicgenre.embeddings import layer_activations, log_mel, patch_frames, patches, signal_settings
        embedding, tagger_rate = predictor.embedding, signal_settings()["sample_rate"]
        y16 = resample(mono, orig_sr=rate, target_sr=tagger_rate)
        batch = patches(log_mel(y16, config=embedding), frames=patch_frames(embedding))
        n_patches = len(batch)
        steps += [(f"resample to {tagger_rate} Hz", lambda: resample(mono, orig_sr=rate, target_sr=tagger_rate)),
                  ("tagger log-mel", lambda: log_mel(y16, config=embedding)),
                  (f"tagger network ({len(batch)} patches)", lambda: layer_activations(batch, config=embedding))]
    item = extract_file(clip, key="clip", config=config, limits=limits, embedding=predictor.embedding,
                        features=predictor.needs_features)
    steps.append(("classifier (predict_proba)", lambda: predictor.predict_proba([item])))
    return [(name, warm_time(fn, repeats)) for name, fn in steps], n_patches


def model_latencies(params: dict[str, Any], clip: str, repeats: int) -> list[tuple[str, str, float]]:
    """(model, family, warm seconds) of one clip for every trained model (grouped protocol), each
    through the serving path: extract_file with what the model reads, then predict_proba."""
    from musicgenre.models import load_predictor, model_names
    config, limits = FeatureConfig.from_params(params), Limits.from_params(params)
    rows = []
    for name in model_names(params):
        directory = resolve(params["paths"]["models"]) / name / "grouped"
        if not (directory / "meta.json").is_file():
            continue
        predictor = load_predictor(directory)
        run = lambda: predictor.predict_proba([extract_file(  # noqa: E731
            clip, key="clip", config=config, limits=limits, embedding=predictor.embedding,
            features=predictor.needs_features)])
        rows.append((name, predictor.family, warm_time(run, repeats)))
    return rows


def tagger_gflop_per_patch(embedding: Any) -> float:
    """Floating-point operations of one patch through the tagger up to the embedding layer
    (TensorFlow's profiler on the frozen graph: multiply-adds count 2)."""
    import tensorflow as tf

    from musicgenre.embeddings import frozen_graph_def, patch_frames, signal_settings
    graph = tf.Graph()
    with graph.as_default():
        patch = tf.compat.v1.placeholder(tf.float32, (1, patch_frames(embedding), signal_settings()["n_mels"]))
        tf.compat.v1.import_graph_def(frozen_graph_def(embedding), input_map={f"{embedding.input_tensor}:0": patch},
                                      name="")
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops / 1e9


def serving_lines(params: dict[str, Any], clips: list[str], repeats: int) -> tuple[list[str], float | None]:
    """Markdown lines of the serving section and the champion's warm latency (None without a champion)."""
    try:
        champion = champion_latency(params, clips, repeats)
    except Exception as exc:  # the registry or champion belongs to colleagues and may not exist yet
        return [f"predict: not available ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"], None
    predictor = champion["predictor"]
    lines = [f"Champion from the registry: {champion['model']} on `{champion['input']}`. Warm `predict` of one "
             f"30 s clip (median of {repeats}): **{1000 * champion['latency_s']:.0f} ms**; batch throughput "
             f"({len(clips)} clips in one call): {champion['batch_clips_per_s']:.2f} clips/s.", "",
             "| step of one champion predict (warm, wall) | ms |", "|---|---:|"]
    steps, n_patches = predict_steps(predictor, params, clips[0], repeats)
    lines += [f"| {name} | {1000 * seconds:.1f} |" for name, seconds in steps]
    if n_patches:
        gflop, network_s = tagger_gflop_per_patch(predictor.embedding), dict(steps)[f"tagger network ({n_patches} patches)"]
        lines += ["", f"The tagger network costs {gflop:.2f} GFLOP per patch, {n_patches * gflop:.1f} GFLOP for this "
                  f"clip: {n_patches * gflop / network_s:.0f} GFLOP/s sustained on this machine (float32). Below "
                  f"100 ms that network alone would need {n_patches * gflop / 0.1:.0f} GFLOP/s."]
    lines += ["", "| model (grouped), same serving path | family | warm predict, ms |", "|---|---|---:|"]
    lines += [f"| {name} | {family} | {1000 * seconds:.0f} |"
              for name, family, seconds in model_latencies(params, clips[0], repeats)]
    return lines, champion["latency_s"]
