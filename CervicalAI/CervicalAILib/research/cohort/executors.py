"""Where the cases are extracted: in this process, a process pool, or a Dask cluster.

Each worker runs `run_task` (one case; it never raises: a failure is reported as a result) with one
BLAS, ITK and onnxruntime thread, so that N workers use N cores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import SimpleITK as sitk

from CervicalAILib.core.errors import CervicalAIError, InputError
from CervicalAILib.research.cohort.case import extract_case

# single-thread settings every worker gets (inherited by spawned processes)
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
_QUIET_LOGGERS = ("CervicalAILib", "radiomics", "pykwalify")


@contextlib.contextmanager


def _quiet_logs() -> Iterator[None]:
    """Per-case warnings go into the part and the sidecar, not onto the console once per case."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    previous = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, previous):
            lg.setLevel(level)


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Worker entry point (process pool, Dask or in-process): never raises, reports failure instead."""
    wall, cpu = time.perf_counter(), time.process_time()
    limits = None
    previous_itk = None
    try:
        if task.get("single_thread"):
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(1)
            previous_itk = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        with _quiet_logs():
            result = extract_case(task["case_dir"], task["config"], threads=1 if task.get("single_thread") else None)
        return {"case_id": task["case_id"], "ok": True, "components": result.components, "masks": result.masks,
                "warnings": result.warnings, "timings": result.timings,
                "wall_seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
    except Exception as exc:  # noqa: BLE001 - one failed case must not stop the cohort
        return {"case_id": task["case_id"], "ok": False, "error": _one_line(exc),
                "error_type": type(exc).__name__, "traceback": traceback.format_exc(),
                "wall_seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
    finally:
        if limits is not None:
            limits.restore_original_limits()
        if previous_itk is not None:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous_itk)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, CervicalAIError) else f"{type(exc).__name__}: {text}"


# ----------------------------------------------------------------------------------------------
# backends


@contextlib.contextmanager


def _single_thread_environment() -> Iterator[None]:
    """Environment inherited by spawned workers: one BLAS / OpenMP / ITK thread each."""
    previous = {name: os.environ.get(name) for name in _THREAD_ENV}
    os.environ.update({name: "1" for name in _THREAD_ENV})
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _worker_init() -> None:
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def run_in_process(tasks: list[dict], on_result: Callable[[dict], None]) -> None:
    for task in tasks:
        on_result(run_task(task))


def run_process_pool(tasks: list[dict], jobs: int, on_result: Callable[[dict], None]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")  # fork would copy the parent's threads and locks
    with _single_thread_environment():
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init)
    try:
        futures = {pool.submit(run_task, {**task, "single_thread": True}): task for task in tasks}
        for future in as_completed(futures):
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                raise CervicalAIError(
                    f"a worker process died while extracting case {futures[future]['case_id']} ({exc}; out of memory?); "
                    "finished cases are saved: run the same command again to resume") from None
            on_result(result)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def run_dask(tasks: list[dict], scheduler: Any, on_result: Callable[[dict], None]) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - dask is in the research extra
        raise InputError(f"--scheduler needs dask.distributed ({exc})") from None
    if isinstance(scheduler, Client):
        client, own = scheduler, False
    else:
        try:
            client, own = Client(str(scheduler), timeout="20s", set_as_default=False), True
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"cannot connect to the Dask scheduler at {scheduler} ({exc})") from None
    try:
        keys = {f"cervicalai-extract-{task['case_id']}-{os.getpid()}-{time.time_ns()}": task for task in tasks}
        futures = [client.submit(run_task, {**task, "single_thread": True}, key=key, pure=False)
                   for key, task in keys.items()]
        for future in as_completed(futures, loop=client.loop):  # the client need not be the default one
            task = keys[future.key]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker lost (killed, out of memory): that case fails
                result = {"case_id": task["case_id"], "ok": False, "error": f"Dask worker failed: {_one_line(exc)}",
                          "error_type": type(exc).__name__, "traceback": traceback.format_exc()}
            on_result(result)
    finally:
        if own:
            client.close()
