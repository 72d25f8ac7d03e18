"""The Space's inversions in worker processes (`spaces/inversion_pool.py`): the same answers as in the server, a clear
"busy" past the bound instead of an endless wait, bad input refused before it is queued, and a worker that dies costs
only its own request. The load script's short run is here too: the whole Space under mixed users."""

import json
import threading
from concurrent.futures import Future
from pathlib import Path

import PIL.Image
import pytest

from benchmarks import space_load
from tests.space_fixtures import _png, app


class GatedExecutor:
    """Stands in for the process pool: each request waits on a Future that the test completes."""

    def __init__(self):
        self.futures: list[Future] = []
        self.submitted = threading.Event()

    def submit(self, fn, *args):
        future = Future()
        self.futures.append(future)
        self.submitted.set()
        return future

    def shutdown(self, **kwargs):
        pass


@pytest.fixture(scope="module")
def handlers(model_dir):
    return app.SpaceHandlers(app.load_pipeline(model_dir))


@pytest.fixture(scope="module")
def pool(handlers, model_dir):
    pool = app.InversionPool(handlers, model_dir, workers=1, max_waiting=1)
    yield pool
    pool.close()


def _digit_png(handlers, tmp_path) -> str:
    image = handlers.pipe(batch_size=1, generator=app.torch.Generator().manual_seed(3), output_type="pil").images[0]
    return _png(tmp_path, "digit.png", image)


def test_a_worker_answers_as_the_server_would(pool, handlers, tmp_path):
    path = _digit_png(handlers, tmp_path)
    in_worker = pool.invert(path, False, 20)
    in_server = handlers.invert(path, False, 20)
    assert len(in_worker) == len(in_server) == 6
    for image_a, image_b in zip(in_worker[:3], in_server[:3]):
        assert image_a.size == image_b.size
    worker_details, server_details = in_worker[5], in_server[5]
    assert worker_details["latent"] == pytest.approx(server_details["latent"], abs=1e-4)
    assert worker_details["refined_mse"] == pytest.approx(server_details["refined_mse"], rel=1e-3, abs=1e-5)
    assert worker_details["refine_steps"] == 20


@pytest.mark.parametrize(
    "args, message",
    [
        ((None, False, 0), "Upload the image first"),
        (("x.png", "yes", 0), "true or false"),
        (("x.png", False, 2.5), "whole"),
    ],
)
def test_bad_input_is_refused_before_it_is_queued(pool, args, message):
    executor = GatedExecutor()
    pool._executor, real = executor, pool._executor
    try:
        with pytest.raises(app.gr.Error, match=message):
            pool.invert(*args)
    finally:
        pool._executor = real
    assert not executor.futures, "a refused request must never reach a worker"
    assert pool._in_flight == 0


def test_past_its_bound_the_pool_says_busy_at_once(handlers, model_dir):
    pool = app.InversionPool(handlers, model_dir, workers=1, max_waiting=1)  # takes 2 at once
    pool._executor = executor = GatedExecutor()
    answers = []
    callers = [threading.Thread(target=lambda: answers.append(pool.invert("x.png", False, 0))) for _ in range(2)]
    for caller in callers:
        executor.submitted.clear()
        caller.start()
        assert executor.submitted.wait(30)  # this request holds a place before the next one comes
    with pytest.raises(app.gr.Error, match="busy: 2 inversions are running or waiting"):
        pool.invert("x.png", False, 0)
    for number, future in enumerate(executor.futures):
        future.set_result(number)
    for caller in callers:
        caller.join(30)
    assert sorted(answers) == [0, 1]
    assert pool._in_flight == 0  # the places are given back: the next request is taken
    executor.submitted.clear()
    caller = threading.Thread(target=lambda: answers.append(pool.invert("x.png", False, 0)))
    caller.start()
    assert executor.submitted.wait(30)
    executor.futures[-1].set_result(2)
    caller.join(30)
    assert answers[-1] == 2


def test_a_dead_worker_costs_only_its_own_request(handlers, model_dir, tmp_path):
    pool = app.InversionPool(handlers, model_dir, workers=1, max_waiting=0)
    try:
        path = _digit_png(handlers, tmp_path)
        assert pool.invert(path, False, 0)[5]["refine_steps"] == 0  # the worker is up
        for process in list(pool._executor._processes.values()):
            process.kill()
            process.join(30)
        with pytest.raises(app.gr.Error, match="worker stopped"):
            pool.invert(path, False, 0)
        assert pool.invert(path, False, 0)[5]["refine_steps"] == 0  # a new worker took over
        assert pool._in_flight == 0
    finally:
        pool.close()


@pytest.mark.slow
def test_the_load_script_runs_the_space_under_mixed_users(tmp_path):
    """`benchmarks/space_load.py`'s short run: 6 users for 12 s against `python spaces/app.py`; none fails."""
    assert space_load.main(["--users", "6", "--seconds", "12", "--results_dir", str(tmp_path), "--tag", "_ci"]) == 0
    result = json.loads((tmp_path / "space_load_ci.json").read_text())
    assert result["outcomes"]["failed"] == 0
    assert result["outcomes"]["ok"] > 0
    assert result["latency"]["sample"]["count"] > 0
    assert result["rss_mib"]["max"] > result["rss_mib"]["start"] * 0.5 > 0
    assert result["meta"]["output_files_fetched"] >= result["outcomes"]["ok"]  # each answer's pictures, as a page
    assert result["meta"]["cpu_seconds"]["server"] > 0
    assert "/sample" in (tmp_path / "space_load_ci.md").read_text()


def test_output_pictures_reach_the_cache_whole_and_once(tmp_path):
    """Two visitors who get the same picture share one cached file, written under a temporary name and renamed, so
    neither can download it half-rewritten (gradio's own PIL path rewrites it in place)."""
    component = app.tabs.output_image(format="png")
    picture = PIL.Image.new("RGB", (30, 20), (200, 10, 10))
    first, second = component.postprocess(picture), component.postprocess(picture.copy())
    assert first.path == second.path and first.path.startswith(str(component.GRADIO_CACHE))
    with PIL.Image.open(first.path) as saved:
        assert saved.size == (30, 20) and saved.getpixel((0, 0)) == (200, 10, 10)
    assert not [p for p in Path(first.path).parent.iterdir() if p.name.startswith(".image.")]
    # gradio's own copy into its cache finds the file under its name for these bytes, and writes nothing more
    assert app.gr.processing_utils.save_file_to_cache(first.path, component.GRADIO_CACHE) == first.path


def test_the_server_bounds_what_it_keeps(server, client):
    """gradio's per-event records (its monitoring page summarises them after events) are capped, and visitors' files
    leave its cache once they are CACHE_SECONDS old: the examples stay, and the Space answers on after a clean-up."""
    from gradio.route_utils import delete_files_created_by_app

    _, demo = server
    assert (demo._queue.ANALYTICS_MAX_EVENTS, demo._queue.ANAYLTICS_CACHE_FREQUENCY) == (2000, 500)
    assert demo.delete_cache == (app.CACHE_SECONDS, app.CACHE_SECONDS)
    client.predict(0, 4, 0.0, api_name="/sample")
    cached = {f for files in demo.temp_file_sets for f in files}
    kept = {f for block in demo.blocks.values() for f in getattr(block, "keep_in_cache", set())}
    assert cached - kept and kept, "a visitor's picture and the examples are both in the cache"
    delete_files_created_by_app(demo, age=0)  # what the hourly clean-up does to files past CACHE_SECONDS
    assert all(not Path(f).exists() for f in cached - kept) and all(Path(f).exists() for f in kept)
    with PIL.Image.open(client.predict(1, 4, 0.0, api_name="/sample")) as grid:
        assert grid.width > 0
