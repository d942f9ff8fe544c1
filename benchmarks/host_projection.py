"""`make host-projection`: the whole pipeline's time on the slower kind of host, projected from this one.

No AVX2-only host is here. Issue 13 timed the pipeline of `reference_commit` on one (2 cores): per-stage
seconds in params scale.host_projection.reference_slow_host_seconds. `make host-projection` runs that commit and HEAD
on this host in scratch clones on the real tracks (the scale benchmark's watcher: wall time per stage),
each natively and with the math libraries held to their AVX2 code paths (reproducibility.avx2_code_paths: oneDNN under
TensorFlow, OpenBLAS, NumPy's dispatch; ONNX Runtime has no such switch, so the tagger stages keep this
host's kernels). Per stage timed on the slow host: slow-host seconds / the reference's AVX2-run seconds
here = that stage's slowdown. HEAD's AVX2-run total times the median slowdown is the projection, the
lowest and highest slowdown its range. The native runs show the same-host comparison directly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.scale import fresh_pipeline, stage_env
from musicgenre.config import load_params, project_root, resolve
from musicgenre.io import atomic_path, write_json


def run_pipeline(
    *, commit: str, isa: dict[str, str], root: Path, checkout: Path, workdir: Path, poll_s: float
) -> dict[str, Any]:
    """Fresh clone of `commit` at `checkout` (beside this one, so its data.source finds the real tracks as a
    fresh clone's does), `genre data sync` + `dvc repro`; per-stage seconds."""
    log = workdir / "run-host.log"
    log.unlink(missing_ok=True)
    env = {**stage_env(corpus=None), **isa}
    run = fresh_pipeline(
        root=root, commit=commit, checkout=checkout, cache=workdir / "cache-host", env=env, poll_s=poll_s, log=log
    )
    return {
        "commit": run["commit"],
        "pipeline_seconds": round(run["sync"]["seconds"] + run["repro"]["seconds"], 1),
        "stages": {label: entry["seconds"] for label, entry in run["repro"]["stages"].items()},
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def projection(*, runs: dict[str, dict[str, Any]], slow_host: dict[str, float]) -> dict[str, Any]:
    """Per-stage slowdown of the slow host over the reference's AVX2 run here; HEAD's AVX2 total scaled."""
    reference = runs["reference/avx2"]
    slowdown = {
        stage: seconds / reference["stages"][stage]
        for stage, seconds in slow_host.items()
        if stage != "total" and reference["stages"].get(stage)
    }
    slowdown["total"] = slow_host["total"] / reference["pipeline_seconds"]
    factors = sorted(slowdown.values())
    head = runs["head/avx2"]["pipeline_seconds"]
    return {
        "slowdown": slowdown,
        "projected_seconds": head * statistics.median(factors),
        "projected_range_seconds": [head * factors[0], head * factors[-1]],
        "reference_slow_host_seconds": slow_host["total"],
    }


def report(*, runs: dict[str, dict[str, Any]], result: dict[str, Any]) -> str:
    """The runs per stage and the projection, as markdown."""
    names = list(runs)
    stages = sorted({stage for run in runs.values() for stage in run["stages"]})
    lines = [
        "| stage | " + " | ".join(names) + " | slow-host slowdown |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for stage in stages:
        cells = [f"{runs[name]['stages'][stage]:.0f} s" if stage in runs[name]["stages"] else "–" for name in names]
        factor = result["slowdown"].get(stage)
        lines.append(f"| `{stage}` | " + " | ".join(cells) + f" | {f'{factor:.2f}x' if factor else ''} |")
    totals = [f"**{runs[name]['pipeline_seconds'] / 60:.1f} min**" for name in names]
    lines.append("| whole pipeline | " + " | ".join(totals) + f" | {result['slowdown']['total']:.2f}x |")
    low, high = (s / 60 for s in result["projected_range_seconds"])
    lines += [
        "",
        f"Projected on the AVX2-only 2-core host: **{result['projected_seconds'] / 60:.1f} min** "
        f"({low:.1f} to {high:.1f} min by the lowest and highest stage slowdown); the reference pipeline "
        f"measured {result['reference_slow_host_seconds'] / 60:.0f} min there.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    params = load_params()
    settings, avx2_only = params["scale"]["host_projection"], params["reproducibility"]["avx2_code_paths"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true", help="redraw the report from the stored results")
    args = parser.parse_args(argv)
    root, results_path = project_root(), resolve(settings["results"])
    runs = json.loads(results_path.read_text())["runs"] if results_path.is_file() else {}
    if not args.report_only:
        workdir, checkout = resolve(settings["workdir"]).resolve(), resolve(settings["checkout"]).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        for commit_name, commit in (("reference", settings["reference_commit"]), ("head", "HEAD")):
            for isa_name, isa in (("native", {}), ("avx2", avx2_only)):
                print(f"host projection: {commit_name} ({commit}) {isa_name} ...", flush=True)
                runs[f"{commit_name}/{isa_name}"] = run_pipeline(
                    commit=commit,
                    isa=isa,
                    root=root,
                    checkout=checkout,
                    workdir=workdir,
                    poll_s=settings["poll_s"],
                )
                write_json(results_path, {"runs": runs})  # kept after every run: a later failure loses nothing
    result = projection(runs=runs, slow_host=settings["reference_slow_host_seconds"])
    write_json(results_path, {"runs": runs, "projection": result})
    text = report(runs=runs, result=result)
    method = (__doc__ or "").split("\n", 1)[1].strip()  # the docstring without its title line
    with atomic_path(resolve(settings["doc"]), suffix=".md") as tmp:
        tmp.write_text(f"# Pipeline time on an AVX2-only host, projected\n\n{method}\n\n{text}")
    print(text)


if __name__ == "__main__":
    main()
