"""What goes on the screen and what goes to the run's log file.

The screen shows the loop: the cell, each stage's progress bar (with its rate) or one line, warnings
that call for action, the results table and the cost table. Everything else (tpt's own detail, and
the engines', trainers' and libraries' logs, progress bars and Python warnings) goes to the run's log
file, `<run dir>/launch.log`. `verbose=true` (or `-v`) puts it all back on the screen.

A log record reaches the screen when it is tpt's and a warning or worse, anyone's error, or marked
`extra=SCREEN`. Processes tpt starts (a vLLM engine, training) write into the log file: the cell's
process says where in the environment (`TPT_LOG_FILE`), and each child sends its stdout and stderr
there (`to_log_file`), or the command's output (`log_file_handle`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import IO, Iterator, Optional

SCREEN = {"screen": True}  # log.info(..., extra=SCREEN): a line of the loop a user watches
LOG_FILE_ENV = "TPT_LOG_FILE"
VERBOSE_ENV = "TPT_VERBOSE"


class ScreenFilter(logging.Filter):
    """The screen's share of the log records (the file handler takes them all)."""

    def __init__(self, verbose: bool = False):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose or record.levelno >= logging.ERROR or getattr(record, "screen", False):
            return True
        return record.levelno >= logging.WARNING and record.name.split(".")[0] == "tpt"


def quiet_libraries(log_file: Optional[str], verbose: bool) -> None:
    """In the cell's process, before the engines' and trainers' imports: libraries log through the
    root logger (so the screen filter applies), draw no progress bars, and Python warnings are logged;
    child processes learn where the log file is."""
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    if log_file:
        os.environ[LOG_FILE_ENV] = log_file
    logging.captureWarnings(True)  # FutureWarning and the like: the file, not the screen
    if verbose:
        return
    for name, value in {
        "VLLM_CONFIGURE_LOGGING": "0",  # vLLM's records go to the root logger, not its own stdout handler
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # the hub's and transformers' bars
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        "TOKENIZERS_PARALLELISM": "false",  # its warning after a fork
    }.items():
        os.environ.setdefault(name, value)


@contextlib.contextmanager
def no_progress_bars(module_name: str) -> Iterator[None]:
    """Within it, the tqdm bars of the module `module_name` (one that draws its own whatever the hub's
    switch says: transformers' GGUF loader) are not drawn, unless verbose."""
    import functools
    import importlib

    module = importlib.import_module(module_name)
    bar = getattr(module, "tqdm", None)
    if verbose() or bar is None:
        yield
        return
    module.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        module.tqdm = bar


def log_file() -> Optional[str]:
    """The run's log file, inside a run launched by launch.py."""
    return os.environ.get(LOG_FILE_ENV)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def log_file_handle() -> Optional[IO]:
    """The run's log file opened for appending, for a child command's output; None when verbose or
    outside a run (the output then goes where this process's goes)."""
    path = os.environ.get(LOG_FILE_ENV)
    if not path or verbose():
        return None
    return open(path, "a", buffering=1)  # noqa: SIM115 (the caller closes it)


def to_log_file() -> None:
    """In a child process tpt started (a vLLM engine): send its stdout and stderr, and those of every
    process it starts, into the run's log file, unless verbose or outside a run."""
    path = os.environ.get(LOG_FILE_ENV)
    if not path or verbose():
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # the libraries' records (vLLM's propagate here: VLLM_CONFIGURE_LOGGING=0), as the cell's log has them
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")


__all__ = ["SCREEN", "ScreenFilter", "log_file_handle", "quiet_libraries", "to_log_file", "verbose"]
