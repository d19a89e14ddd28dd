"""Where a sweep's tasks run (#23): the same records in this process and on a local Ray of 2 CPUs, latency never
timed inside a task that runs beside others, and a failing task named with its arm and seed, with nothing kept."""

import pytest
import torch

import gansurvey as gs
from gansurvey.checks import GanSurveyError, check_number
from gansurvey.experiments import distillation as xd
from gansurvey.experiments.executor import Task, TaskFailed, connect, gathered, run_tasks
from gansurvey.measuring import UNTIMED
from gansurvey.notebook import parameters_digest
from gansurvey.records import UNDER_LOAD_ENV, ResultsStore, records_frame

#: Columns a timing decides: they may differ between two runs of the same arm.
TIMING = ["latency_ms", "engine"]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs for the module (it takes seconds to start), stopped afterwards."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        yield connect()
        ray.shutdown()


def _rows(records):
    frame = records_frame(records).drop(columns=TIMING)
    return frame.sort_values(["technique", "seed"]).reset_index(drop=True)


def test_a_sweep_on_ray_gives_the_serial_records(quick_profile, local_ray):
    profile = quick_profile(eval_samples=100, latency_repeats=1, latency_warmup=0)
    bench = gs.get_benchmark("gaussians-mlp")
    teacher, disc = bench.teacher("quick", 0, device="cpu")
    kwargs = dict(variants=("scratch", "feature"), device="cpu", profile=profile, notebook="test")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Ray task's (one CPU each): a thread count can change float sums
    try:
        serial, serial_grids = xd.distillation_sweep(bench, teacher, disc, [0.5], [0, 1], 3, **kwargs)
    finally:
        torch.set_num_threads(before)
    on_ray, ray_grids = xd.distillation_sweep(bench, teacher, disc, [0.5], [0, 1], 3, executor="ray", **kwargs)
    # scratch, feature, the matched pruned model and the pruned+feature student, per seed, in the serial order
    assert [(r.technique, r.seed) for r in on_ray] == [(r.technique, r.seed) for r in serial]
    assert len(on_ray) == 8
    assert _rows(on_ray).equals(_rows(serial))
    assert all(torch.equal(ray_grids[k], serial_grids[k]) for k in serial_grids) and ray_grids.keys() == \
        serial_grids.keys()
    # timed after the tasks, one after another, in this process: every record has its latency and engine
    assert all(r.latency_ms > 0 and r.engine and r.timed_under_load is False for r in on_ray)


def test_measure_in_a_parallel_task_leaves_the_latency_to_time_afterwards(quick_profile, monkeypatch):
    profile = quick_profile(eval_samples=100, latency_repeats=1, latency_warmup=0)
    bench = gs.get_benchmark("gaussians-mlp")
    teacher, _ = bench.teacher("quick", 0, device="cpu")
    untimed = []
    token = UNTIMED.set(untimed)
    try:
        record = gs.measure(teacher, bench, profile=profile, device="cpu")
    finally:
        UNTIMED.reset(token)
    assert (record.latency_ms, record.engine, record.timed_under_load) == (None, None, None)
    assert [entry.record for entry in untimed] == [record]
    monkeypatch.setenv(UNDER_LOAD_ENV, "1")  # timed while other notebooks run: marked
    assert untimed[0].time() is record
    assert record.latency_ms > 0 and record.engine == "torch-dense" and record.timed_under_load is True
    assert gs.measure(teacher, bench, profile=profile, device="cpu").timed_under_load is True
    monkeypatch.delenv(UNDER_LOAD_ENV)
    assert gs.measure(teacher, bench, profile=profile, device="cpu").timed_under_load is False


@pytest.mark.parametrize("executor", ["serial", "ray"])
def test_a_failing_task_is_named_with_its_arm_and_seed_and_nothing_is_written(executor, tmp_path, request):
    if executor == "ray":
        request.getfixturevalue("local_ray")
    tasks = [Task("w0.5", 0, check_number, {"what": "width", "value": 0.5, "minimum": 0}),
             Task("w-1", 1, check_number, {"what": "width", "value": -1, "minimum": 0}),
             Task("w2", 2, check_number, {"what": "width", "value": 2, "minimum": 0})]
    store = ResultsStore("quick", root=tmp_path)
    with pytest.raises(TaskFailed) as failed:
        store.write("nb", run_tasks(tasks, executor, desc="toy sweep"))
    assert str(failed.value) == "toy sweep: arm 'w-1', seed 1 failed: GanSurveyError: width must be a number >= 0, " \
                                "got -1"
    assert not list(tmp_path.rglob("*.csv"))
    assert run_tasks([tasks[0], tasks[2]], executor) == [0.5, 2]  # the others, in task order


def test_tasks_come_back_in_order_and_gather_their_grids():
    tasks = [Task(str(v), None, check_number, {"what": "v", "value": v}) for v in (3, 1, 2)]
    assert run_tasks(tasks) == [3, 1, 2]
    records, grids = gathered([("a", {"x": 1}), (["b", "c"], {"x": 2, "y": 3})])
    assert records == ["a", "b", "c"] and grids == {"x": 2, "y": 3}
    with pytest.raises(GanSurveyError, match="executor.*'dask'"):
        run_tasks(tasks, "dask")
    with pytest.raises(GanSurveyError, match="pass executor='ray'"):
        run_tasks(tasks, "serial", address="auto")
    # a notebook's ad hoc records are the same whichever executor computed them
    assert parameters_digest("01_pruning", {"seed": 0, "executor": "ray"}) == parameters_digest("01_pruning",
                                                                                                 {"seed": 0})
