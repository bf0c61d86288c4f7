"""Command line of the benchmark suite."""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._contenders import (
    AIOINTERP,
    AIOINTERP_PROCESS,
    Contender,
    all_contenders,
    process_contenders,
)
from ._process_scenarios import PROCESS_SCENARIOS
from ._report import (
    evaluate_process_targets,
    evaluate_targets,
    write_markdown,
    write_plots,
)
from ._scenarios import ROOT, SCENARIOS, SETTINGS, Runner, add_ratios, settings_dict
from ._web_report import evaluate_web_targets, write_web_markdown
from ._web_scenarios import BASELINE as WEB_BASELINE
from ._web_scenarios import WEB_SCENARIOS, web_contenders

BACKENDS = ("asyncio", "trio")


@dataclasses.dataclass(frozen=True)
class Suite:
    """What one ``python -m benchmarks --suite NAME`` run measures and writes."""

    scenarios: dict[str, Callable[[Runner], dict[str, Any]]]
    contenders: Callable[[], list[Contender]]
    #: the contender every ratio divides by
    baseline: str
    evaluate: Callable[[dict[str, Any]], list[dict[str, Any]]]
    #: output files: results-<prefix><python>.json, report-<prefix><python>.md
    prefix: str
    #: writes report-<prefix><python>.md
    markdown: Callable[[dict[str, Any], Path, dict[str, str], str], None] = (
        write_markdown
    )
    #: distributions whose versions the results name, besides the common ones
    versions: tuple[str, ...] = ()
    #: whether write_plots draws anything for it
    plots: bool = True


SUITES = {
    "default": Suite(SCENARIOS, all_contenders, AIOINTERP, evaluate_targets, ""),
    "process": Suite(
        PROCESS_SCENARIOS,
        process_contenders,
        AIOINTERP_PROCESS,
        evaluate_process_targets,
        "process-",
    ),
    "web": Suite(
        WEB_SCENARIOS,
        web_contenders,
        WEB_BASELINE,
        evaluate_web_targets,
        "web-",
        write_web_markdown,
        ("fastapi", "uvicorn", "uvloop", "pandas", "pydantic", "Pillow"),
        plots=False,
    ),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Benchmark aiointerp against other ways to run sync code off the event "
            "loop; write results-<python>.json and report-<python>.md."
        ),
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="fewer repetitions, no 100 MB (< 1 min)"
    )
    mode.add_argument(
        "--smoke",
        action="store_true",
        help="the least that exercises every scenario (for tests; numbers meaningless)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "benchmarks",
        help="directory for the JSON, the report and the plots (default: %(default)s)",
    )
    parser.add_argument(
        "--suite",
        choices=tuple(SUITES),
        default="default",
        help='"process": InterpreterPool(kind="process") against the process pools '
        "(writes results-process-<python>.json and report-process-<python>.md); "
        "default: %(default)s",
    )
    parser.add_argument(
        "--scenarios",
        default=None,
        help="comma-separated subset of the suite's scenarios (default suite: "
        + ", ".join(SCENARIOS)
        + "; process suite: "
        + ", ".join(PROCESS_SCENARIOS)
        + "; web suite: "
        + ", ".join(WEB_SCENARIOS)
        + ")",
    )
    parser.add_argument(
        "--contenders",
        default=None,
        help="comma-separated contenders (or prefixes of their names) to run beside "
        "aiointerp (default: all available)",
    )
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="default: %(default)s"
    )
    parser.add_argument("--no-plots", action="store_true", help="do not draw PNG plots")
    web = parser.add_argument_group("web suite")
    web.add_argument(
        "--web-workers",
        type=int,
        default=None,
        help="workers of every contender of the web app (default 2)",
    )
    web.add_argument(
        "--web-requests",
        type=int,
        default=None,
        help="requests of each load (default 200; --quick 40)",
    )
    web.add_argument(
        "--web-concurrency",
        type=int,
        default=None,
        help="requests in flight at once (default 40; --quick 10)",
    )
    return parser


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _compile_sources() -> None:
    """Byte-compile aiointerp and this suite, as an installed package is.

    With ``PYTHONDONTWRITEBYTECODE`` set, or from a source tree that was never
    imported, every fresh interpreter would compile them from source again: a cost
    no installed package pays, and one the other contenders (code in site-packages,
    compiled when it was installed) would not pay.
    """
    import aiointerp

    for package in (Path(aiointerp.__file__).parent, Path(__file__).parent):
        compileall.compile_dir(package, quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    settings = SETTINGS[mode]
    overrides = {
        "web_workers": args.web_workers,
        "web_requests": args.web_requests,
        "web_concurrency": args.web_concurrency,
    }
    given = {name: value for name, value in overrides.items() if value is not None}
    if any(value < 1 for value in given.values()):
        print(f"--web-* options take positive numbers: {given}", file=sys.stderr)
        return 2
    settings = dataclasses.replace(settings, **given)
    suite = SUITES[args.suite]
    chosen = args.scenarios if args.scenarios is not None else ",".join(suite.scenarios)
    names = [name.strip() for name in chosen.split(",") if name.strip()]
    unknown = set(names) - set(suite.scenarios)
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    if unknown or not set(backends) <= set(BACKENDS):
        print(f"unknown scenarios or backends: {unknown or backends}", file=sys.stderr)
        return 2
    contenders = suite.contenders()
    if args.contenders:
        wanted = {name.strip() for name in args.contenders.split(",")}
        contenders = [
            c
            for c in contenders
            if c.name == suite.baseline or any(c.name.startswith(w) for w in wanted)
        ]
    tag = f"{suite.prefix}{sys.version_info.major}.{sys.version_info.minor}"
    _compile_sources()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        print(line, flush=True)

    log(
        f"aiointerp benchmarks, {args.suite} suite, {mode} mode, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load {_loadavg()}"
    )
    for contender in contenders:
        status = contender.unavailable or "on " + ", ".join(
            b for b in contender.backends if b in backends
        )
        log(f"  contender {contender.name:<24} {status}")

    runner = Runner(settings, contenders, backends, log)
    started = datetime.datetime.now(datetime.UTC)
    start = time.perf_counter()
    load_start = _loadavg()
    scenarios: dict[str, Any] = {}
    broken = []
    for number, name in enumerate(names, 1):
        log(f"== [{number}/{len(names)}] {name}")
        scenario_start = time.perf_counter()
        try:
            scenario = suite.scenarios[name](runner)
            add_ratios(scenario, suite.baseline)
        except Exception as exc:  # a bug of the harness: report it, go on
            traceback.print_exc()
            scenario = {
                "title": name,
                "error": f"{type(exc).__name__}: {exc}",
                "rows": [],
            }
            broken.append(name)
        scenario["seconds"] = time.perf_counter() - scenario_start
        scenarios[name] = scenario
        log(f"== {name} done in {scenario['seconds']:.1f} s")
        for row in scenario.get("rows", []):
            if row.get("contender") == suite.baseline and "error" in row:
                broken.append(f"{name}: aiointerp {row['backend']} {row['variant']}")

    argv_shown = "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    results: dict[str, Any] = {
        "meta": {
            "python": platform.python_version(),
            "python_full": sys.version.replace("\n", " "),
            "tag": tag,
            "suite": args.suite,
            "baseline": suite.baseline,
            "mode": mode,
            "args": argv_shown,
            "started": started.isoformat(timespec="seconds"),
            "duration_s": time.perf_counter() - start,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "loadavg_start": load_start,
            "loadavg_end": _loadavg(),
            "workers": settings.web_workers
            if args.suite == "web"
            else settings.workers,
            "backends": list(backends),
            "settings": settings_dict(settings),
            "contenders": [c.name for c in contenders],
            "unavailable": {c.name: c.unavailable for c in contenders if c.unavailable},
            "versions": {
                dist: version
                for dist in (
                    "aiointerp",
                    "anyio",
                    "trio",
                    "trio-parallel",
                    "pebble",
                    "numpy",
                    "matplotlib",
                    *suite.versions,
                )
                if (version := _version(dist)) is not None
            },
        },
        "scenarios": scenarios,
    }
    results["targets"] = suite.evaluate(results)

    json_path = out / f"results-{tag}.json"
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    plots: dict[str, str] = {}
    plot_note = "No plots: --no-plots." if args.no_plots else ""
    if not args.no_plots and suite.plots:
        try:
            plots = write_plots(results, out, tag)
        except ImportError:
            plot_note = "No plots: matplotlib is not installed."
            log("matplotlib is not installed: no plots (pip install matplotlib)")
    report_path = out / f"report-{tag}.md"
    suite.markdown(results, report_path, plots, plot_note)

    log("== targets (reported, not asserted)")
    for target in results["targets"]:
        verdict = {None: "not measured", True: "met", False: "MISSED"}[
            target["all_met"]
        ]
        shown = ", ".join(f"{b} {v}" for b, v in target["shown"].items())
        log(f"  {verdict:<12} {target['target']}: {shown or '-'}")
    log(f"wrote {json_path}, {report_path} and {len(plots)} plots")
    log(f"total {results['meta']['duration_s']:.1f} s")
    if broken:
        log("FAILED: " + "; ".join(broken))
        return 1
    return 0
