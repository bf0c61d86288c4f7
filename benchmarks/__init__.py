"""aiointerp's benchmark suite: ``python -m benchmarks [--suite process] [--quick | --smoke]``.

Compares aiointerp with the other ways to run sync code off an asyncio or trio event
loop (anyio.to_interpreter, anyio.to_thread, anyio.to_process, 3.14's
InterpreterPoolExecutor, trio_parallel) and with a raw lower bound
(:mod:`benchmarks._raw`), on the running Python. Writes
``docs/benchmarks/results-<python>.json`` and ``report-<python>.md`` (with PNG plots
when matplotlib is installed). ``--suite process`` measures
``InterpreterPool(kind="process")`` against anyio.to_process, ProcessPoolExecutor,
pebble and trio_parallel instead, and writes ``results-process-<python>.json`` and
``report-process-<python>.md``. Modules:

* ``_cli``: command line, JSON and report writing
* ``_scenarios``: the scenarios and their settings per mode
* ``_process_scenarios``: the scenarios of the process suite
* ``_contenders``: how each contender is opened and called
* ``_raw``: the raw lower bound
* ``_work``: the functions sent to workers (stdlib only)
* ``_memory``: the memory scenario, run in fresh processes
* ``_report``: targets, Markdown and plots
* ``cancel_latency`` (optional): cancellation latency
"""
