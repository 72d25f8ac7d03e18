"""Inversions in their own process, with a bounded wait.

An inversion decodes a large upload, runs up to hundreds of Adam steps and draws a matplotlib figure: a few tenths of
a second of mostly Python work per request. Run in the server's threads, that work holds the interpreter lock that
every cheap request (a sample, an interpolation) needs as well, so under load a sample of a few milliseconds waited
seconds behind the inversions. Here the inversions run in worker processes of their own, each with one torch thread and
a lower priority than the server, and the server's threads only wait on them.

The pool takes `capacity` requests at once and answers "busy" past that. The Space sets gradio's own limit for
inversions to the same number, so the rest wait in gradio's queue (which answers "full" past its size): a visitor
refused at once would send a 9 MB upload again, which cost the cheap requests more than waiting did.
"""

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import gradio as gr

from handlers import SpaceHandlers

WORKER_NICENESS = 10  # added to the server's niceness (Linux: 0 is normal, 19 the lowest priority)
_WORKER_HANDLERS: SpaceHandlers | None = None  # one per worker process, built by _start_worker


def _exit_with(parent: int) -> None:
    # a server killed outright (SIGKILL, os._exit on SIGTERM) cannot stop its workers: they stop themselves
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _start_worker(model_folder: str, parent: int) -> None:
    """Runs once in each worker process: its own copy of the model, one torch thread."""
    import torch

    from veegan_hf import VEEGAN

    global _WORKER_HANDLERS
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    torch.set_num_threads(1)
    # a lower priority than the server's: under load an inversion takes the cycles the cheap requests leave, so a
    # busy queue of inversions never holds a core the server needs for a sample
    os.nice(WORKER_NICENESS)
    _WORKER_HANDLERS = SpaceHandlers(VEEGAN.from_pretrained(model_folder, load_discriminator=False))


def _ready() -> None:
    pass


def _invert_in_worker(image: Any, invert_colors: Any, refine_steps: Any) -> tuple:
    return _WORKER_HANDLERS.invert(image, invert_colors, refine_steps)


class InversionPool:
    """
    `SpaceHandlers.invert`, run in `workers` processes that each load the model from `model_folder`.

    At most `workers` inversions run at once and `max_waiting` more wait for a worker; a request beyond that is
    answered at once with a `gr.Error` that says the Space is busy. A worker that dies (killed for memory, say) fails
    only the requests it held: the pool is started again for the next ones.

    Args:
        handlers (`SpaceHandlers`): the server's handlers; their argument checks run before a request is queued.
        model_folder (`str`): the local folder of the loaded model (`pipe.source_folder`).
        workers (`int`): worker processes, each with one torch thread.
        max_waiting (`int`): requests that may wait for a worker.
    """

    def __init__(
        self, handlers: SpaceHandlers, model_folder: str | os.PathLike, workers: int = 1, max_waiting: int = 8
    ):
        if workers < 1 or max_waiting < 0:
            raise ValueError(f"workers must be >= 1 and max_waiting >= 0, got {workers} and {max_waiting}")
        self.handlers, self.model_folder = handlers, str(model_folder)
        self.workers, self.max_waiting = workers, max_waiting
        self._lock = threading.Lock()
        self._in_flight = 0
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server runs threads (gradio's, torch's) that a forked child would inherit mid-state
        context = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(
            self.workers, context, initializer=_start_worker, initargs=(self.model_folder, os.getpid())
        )
        # started now, so that no visitor waits for a worker to load the model
        self._ready = [executor.submit(_ready) for _ in range(self.workers)]
        return executor

    def wait_ready(self, timeout: float | None = None) -> None:
        """Blocks until every worker has loaded the model; a worker that could not start raises here."""
        for future in self._ready:
            future.result(timeout=timeout)

    @property
    def capacity(self) -> int:
        """Requests the pool takes before it answers "busy": the running ones and the waiting ones."""
        return self.workers + self.max_waiting

    def invert(
        self, image: Any, invert_colors: Any = False, refine_steps: Any = 0
    ) -> tuple[Any, Any, Any, Any, str, dict[str, Any]]:
        """
        Encodes an image, z = F(x), decodes it, G(F(x)), and optionally refines z by `refine_steps` Adam steps on
        ||G(z) - x||^2, in a worker process.

        Returns the model's view of the input, G(F(x)), G(z*) (or None), a latent bar plot, a Markdown summary and
        the raw numbers.
        """
        self.handlers.check_invert_arguments(image, invert_colors, refine_steps)  # bad input is refused here
        with self._lock:
            if self._in_flight >= self.capacity:
                raise gr.Error(
                    f"The Space is busy: {self._in_flight} inversions are running or waiting, the most it takes at "
                    "once. Try again in a few seconds; fewer refinement steps finish sooner.",
                    print_exception=False,  # expected under load: no traceback in the server's log
                )
            self._in_flight += 1
            executor = self._executor
        try:
            return executor.submit(_invert_in_worker, image, invert_colors, refine_steps).result()
        except BrokenProcessPool:
            with self._lock:
                if self._executor is executor:  # the first to notice starts a new pool; the others use it
                    self._executor = self._start()
            raise gr.Error("The inversion worker stopped while it held this request. Please try again.") from None
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        """Stops the worker processes."""
        self._executor.shutdown(wait=False, cancel_futures=True)
