"""The scale benchmark's report: per-stage table, growth exponents, projection and plot, in BENCHMARKS.md.

Growth is the log-log slope of a stage's time (and memory) between the two largest N measured (the
smallest N is dominated by start-up for most stages); projection = the larger of that power law from the
largest N and a start-up + per-track line fitted by least squares over every N. A stage "must go distributed" when its
projected time alone exceeds the target minutes or its projected memory the target RSS.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from musicgenre.config import project_root, resolve
from musicgenre.io import write_text

# What the numbers cannot say by themselves (causes read from the code, not fitted)
NOTES = """Reading the table:

- Three points per stage, so slopes are rough; a stage whose small-N time is start-up (imports, TensorFlow,
  ONNX export) shows a sub-linear slope, which is why the projection also draws the start-up + per-track line.
- Memory: `featurize` appends log-mels to disk as they are made and readers open `logmel.npy` memory-mapped;
  `embed` and `embed_patches` keep one vector (or 10 patch vectors of 256 floats) per track, so they are flat
  from 173 to 1000 tracks. What grows: `train@random_forest` (the forest itself: 300 deep trees on ~10 segment
  rows per track), `train@svm` (its kernel over segment rows, N^1.3 in time) and `evaluate`. Evaluate runs its
  CV in two phases: the deep models first, in two workers that load TensorFlow (~1.9 GB together from the
  start) and exit; then the other nine models in two fresh workers, each holding the tables and its fold
  models (the pooled tagger layer makes the transfer rows 3,500 wide). Below ~3,000 tracks the deep phase
  sets the peak, so a line through 173-1000 tracks says little about 10k: the probe measures it.
- Time: `embed` (the tagger, 10 patches per clip), `embed_patches` (the deep models' MSD_vgg base on the same
  patches) and `evaluate` (15 refits of every model; the deep ones now a few seconds each on the base's
  stored patches) are the linear giants. Both embed stages run on Dask by switching
  `orchestration.task_runner` (one task per `scale.batch_tracks` chunk); evaluate's fits go to the cluster
  through joblib's Dask backend (one task per model, so at most 11 tasks: a 10k run needs per-fit tasks);
  `validate` (per-track audio checks) has no Dask path yet. Batch scoring (not a pipeline stage, so not in
  this table) holds one chunk of `scale.batch_tracks` files at a time.
"""

BEGIN, END = "<!-- scale-benchmark:begin -->", "<!-- scale-benchmark:end -->"
SECTION = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)


def slope(points: list[tuple[int, float]]) -> float | None:
    """log-log slope between the two largest N (None with fewer than two positive points): the growth where
    start-up no longer dominates."""
    usable = sorted((n, v) for n, v in points if v > 0)[-2:]
    if len(usable) < 2:
        return None
    (n0, v0), (n1, v1) = usable
    return math.log(v1 / v0) / math.log(n1 / n0)


def least_squares(x: list[float], y: list[float]) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line through the points."""
    mx, my = sum(x) / len(x), sum(y) / len(y)
    slope_ = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    return slope_, my - slope_ * mx


def growth_name(exponent: float | None) -> str:
    """A word for the exponent: what a reader plans with."""
    if exponent is None:
        return "–"
    for limit, name in ((0.3, "flat (start-up bound)"), (0.75, "sub-linear"), (1.3, "linear"), (1.7, "N^1.5")):
        if exponent < limit:
            return name
    return "quadratic" if exponent < 2.4 else "worse than quadratic"


def project(points: list[tuple[int, float]], *, to: int) -> float | None:
    """The larger of two extrapolations: the power law (log-log slope of the two largest N) and a start-up
    cost plus a per-track cost (a line fitted by least squares over every N, so one noisy run moves it
    less). A stage whose small-N time is mostly start-up shows a sub-linear slope that the power law would
    carry to 100k; the line does not underrate it; a stage whose line does not rise stays at its largest
    measurement."""
    exponent = slope(points)
    if exponent is None:
        return None
    ordered = sorted(points)
    n1, v1 = ordered[-1]
    per_track, start_up = least_squares([float(n) for n, _ in ordered], [v for _, v in ordered])
    power = v1 * (to / n1) ** max(exponent, 0.0)
    line = start_up + per_track * to if per_track > 0 else max(v for _, v in ordered)
    return max(power, line)


def stage_rows(results: dict[str, Any]) -> tuple[list[int], list[str]]:
    """The measured N (ascending) and every stage label in dvc.yaml's order (data sync first)."""
    import yaml

    order = ["data sync", *yaml.safe_load((project_root() / "dvc.yaml").read_text(encoding="utf-8"))["stages"]]
    sizes = sorted(int(n) for n in results)
    labels = sorted({label for n in sizes for label in results[str(n)]["stages"]})
    rank = {name: index for index, name in enumerate(order)}
    return sizes, sorted(labels, key=lambda label: (rank.get(label.split("@")[0], len(order)), label))


def series(results: dict[str, Any], label: str, key: str) -> list[tuple[int, float]]:
    return [(int(n), r["stages"][label][key]) for n, r in results.items() if label in r["stages"]]


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def fmt_mb(mb: float | None) -> str:
    return "–" if mb is None else (f"{mb:.0f} MB" if mb < 2048 else f"{mb / 1024:.1f} GB")


def measured_table(results: dict[str, Any]) -> str:
    """stage | per N: time, peak RSS | growth of time and of memory."""
    sizes, labels = stage_rows(results)
    header = ["stage", *[f"N={n} time / peak RSS" for n in sizes], "time growth (slope)", "RSS growth (slope)"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(sizes) + "---|---|"]
    for label in labels:
        cells = [f"`{label}`"]
        for n in sizes:
            entry = results[str(n)]["stages"].get(label)
            cells.append(f"{fmt_time(entry['seconds'])} / {fmt_mb(entry['peak_rss_mb'])}" if entry else "–")
        for key in ("seconds", "peak_rss_mb"):
            exponent = slope(series(results, label, key))
            cells.append(f"{growth_name(exponent)} ({exponent:.2f})" if exponent is not None else "–")
        lines.append("| " + " | ".join(cells) + " |")
    totals = [
        f"**{fmt_time(results[str(n)]['pipeline_seconds'])} / {fmt_mb(results[str(n)]['pipeline_peak_rss_mb'])}**"
        for n in sizes
    ]
    lines.append(
        "| **whole pipeline** (sync + `dvc repro`, incl. DVC's own hashing) | " + " | ".join(totals) + " | | |"
    )
    return "\n".join(lines)


def excess(seconds: float | None, mb: float | None, settings: dict[str, Any]) -> str:
    """'time', 'memory', 'time + memory' or '' against the 2-core / 6 GB target."""
    reasons = []
    if (seconds or 0) > settings["target_minutes"] * 60:
        reasons.append(f"time > {settings['target_minutes']} min")
    if (mb or 0) > settings["target_rss_gb"] * 1024:
        reasons.append(f"RSS > {settings['target_rss_gb']} GB")
    return " + ".join(reasons)


def probe_results(settings: dict[str, Any]) -> dict[str, Any]:
    """What `make evaluate-memory` measured (N -> phases, commit, finished); empty when it has not been run."""
    path = resolve(settings["evaluate_probe"]["results"])
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def probe_peaks(probe: dict[str, Any]) -> dict[int, float]:
    """N -> evaluate's peak RSS (MB): the larger of its two phases (they run one after the other)."""
    return {int(n): max(phase["peak_rss_mb"] for phase in r["phases"].values()) for n, r in probe.items()}


def probe_table(probe: dict[str, Any]) -> str:
    """evaluate's cross-validation on tiled tables, per N: each phase's time and peak RSS."""
    if not probe:
        return "Not measured yet: `make evaluate-memory`."
    lines = [
        "| N | deep phase (cnn, crnn) time / peak RSS | other 9 models time / peak RSS | run |",
        "|---:|---:|---:|---|",
    ]
    for n in sorted(probe, key=int):
        deep, others = probe[n]["phases"]["deep"], probe[n]["phases"]["others"]
        cells = [f"{int(n):,}", *[f"{fmt_time(p['seconds'])} / {fmt_mb(p['peak_rss_mb'])}" for p in (deep, others)]]
        lines.append("| " + " | ".join(cells + [f"{probe[n]['commit'][:8]}, {probe[n]['finished']}"]) + " |")
    return "\n".join(lines)


def projection_table(results: dict[str, Any], settings: dict[str, Any], probe: dict[str, Any]) -> tuple[str, list[str]]:
    """Projected time and memory per stage at each params.scale.benchmark.project_to (evaluate's memory
    measured by the probe where it reached that N); the stages that must go distributed (time alone over
    target_minutes or memory over target_rss_gb at 10k)."""
    sizes, labels = stage_rows(results)
    probed = probe_peaks(probe)
    # the target N too, when it was not measured (a projection, labelled as one)
    targets = [n for n in [settings["target_tracks"]] if n not in sizes] + list(settings["project_to"])
    header = ["stage", *[f"N={n:,} time / RSS" for n in targets], "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(targets) + "---|"]
    distributed = []
    for label in labels:
        times = [project(series(results, label, "seconds"), to=n) for n in targets]
        memory = [project(series(results, label, "peak_rss_mb"), to=n) for n in targets]
        if label == "evaluate":  # a measurement beats a line through 173-1000 tracks
            memory = [probed.get(n, m) for n, m in zip(targets, memory)]
        over = [f"{n:,} ({reason})" for n, t, m in zip(targets, times, memory) if (reason := excess(t, m, settings))]
        if over:
            distributed.append(label)
        verdict = "over target at " + "; ".join(over) if over else "fits 2 cores / 6 GB"
        if times[-1] is None:
            verdict = "needs two measured N"
        shown = [
            f"{fmt_mb(m)}{' (measured)' if label == 'evaluate' and n in probed else ''}"
            for n, m in zip(targets, memory)
        ]
        cells = [f"`{label}`", *[f"{fmt_time(t)} / {m}" for t, m in zip(times, shown)], verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), distributed


def plot(results: dict[str, Any], settings: dict[str, Any]) -> None:
    """Time and peak RSS vs N per stage (log-log), one line per stage, into scale.benchmark.figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes, labels = stage_rows(results)
    figure, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for axis, key, unit in ((axes[0], "seconds", "wall time (s)"), (axes[1], "peak_rss_mb", "peak RSS (MB)")):
        for index, label in enumerate(labels):  # 20 distinct colours, dashed for the second ten
            points = sorted(series(results, label, key))
            style = {"color": plt.cm.tab20(index % 20), "linestyle": "-" if index % 2 == 0 else "--"}
            axis.plot([n for n, _ in points], [v for _, v in points], marker="o", label=label, **style)
        axis.set(xscale="log", yscale="log", xlabel="tracks (N)", ylabel=unit, xticks=sizes)
        axis.set_xticklabels([str(n) for n in sizes])
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_title("per-stage wall time vs N (2 cores, shared)")
    axes[1].set_title("per-stage peak RSS (process tree) vs N")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.tight_layout()
    target = resolve(settings["figure"])
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    plt.close(figure)


def section(results: dict[str, Any], settings: dict[str, Any]) -> str:
    """The markdown between the scale markers of BENCHMARKS.md."""
    sizes = sorted(int(n) for n in results)
    probe = probe_results(settings)
    projected, distributed = projection_table(results, settings, probe)
    largest = results[str(sizes[-1])]
    met = largest["pipeline_seconds"] <= settings["target_minutes"] * 60 and (
        largest["pipeline_peak_rss_mb"] <= settings["target_rss_gb"] * 1024
    )
    runs = "; ".join(
        f"N={n}: commit {results[str(n)]['commit'][:8]}, {results[str(n)]['finished']}, corpus built in "
        f"{fmt_time(results[str(n)]['corpus_seconds'])}, load average at end "
        f"{', '.join(f'{x:.2f}' for x in results[str(n)]['load_average'])}"
        for n in sizes
    )
    figure = resolve(settings["figure"]).relative_to(project_root())
    return "\n\n".join(
        [
            BEGIN,
            "## Scale: the whole pipeline at N tracks (`make scale-benchmark`)",
            "Generated by `python -m benchmarks.scale` (corpus: `genre data scale-corpus`, real tracks plus "
            "label- and artist-preserving variants; accuracy on it means nothing). Each N runs `genre data sync` "
            "+ `dvc repro` in a fresh clone with an empty DVC cache on the shared 2-core machine. Time = wall "
            "clock of the stage's process; RSS = peak of the summed resident memory of the stage's process tree "
            f"(workers included, shared pages counted per process: an upper bound). Runs: {runs}.",
            measured_table(results),
            f"![time and peak RSS vs N per stage]({figure})",
            f"**Target**: N={settings['target_tracks']} within {settings['target_minutes']} min and under "
            f"{settings['target_rss_gb']} GB peak RSS on 2 cores. Largest N measured: {sizes[-1]}, "
            f"{fmt_time(largest['pipeline_seconds'])}, peak {fmt_mb(largest['pipeline_peak_rss_mb'])} "
            f"({'within' if met else '**over**'} the target's limits).",
            "### Projection (the larger of the two largest N's log-log power law and the least-squares "
            "start-up + per-track line over every N)",
            projected,
            "`evaluate`'s memory where marked *measured*: `make evaluate-memory` (`benchmarks/evaluate_memory.py`) "
            "ran the stage's cross-validation, phase by phase as the stage does (the deep models first, in worker "
            "processes that exit; then the other nine models in fresh ones), on the real artifact tables tiled to "
            "N tracks (renamed copies as new artists, 0.1 % noise; one repeat, since repeats add time, not memory):",
            probe_table(probe),
            "Stages that must go distributed (or change algorithm) before 10k-100k tracks: "
            + (", ".join(f"`{label}`" for label in distributed) or "none")
            + ".",
            NOTES,
            END,
        ]
    )


def write_report(*, results: dict[str, Any], settings: dict[str, Any]) -> None:
    """Plot, then replace (or append) the scale section of BENCHMARKS.md."""
    if not results:
        raise SystemExit("scale benchmark: no results to report (run without --report-only first)")
    plot(results, settings)
    target = resolve(settings["output"])
    old = target.read_text(encoding="utf-8") if target.is_file() else "# Benchmarks\n"
    text = section(results, settings)
    new = SECTION.sub(lambda _: text, old) if SECTION.search(old) else old.rstrip() + "\n\n" + text + "\n"
    write_text(target, new)
    print(f"scale benchmark: report -> {target}, figure -> {resolve(settings['figure'])}")


def keep_section(*, old: str, new: str) -> str:
    """`make benchmark` rewrites BENCHMARKS.md whole: carry the scale section over from the old text."""
    found = SECTION.search(old)
    return new.rstrip() + "\n\n" + found.group(0) + "\n" if found and not SECTION.search(new) else new
