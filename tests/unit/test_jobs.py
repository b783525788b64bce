import threading
import time

from baal_backend.jobs import TrainingCoordinator


def test_burst_is_coalesced_and_last_run_sees_newest():
    stored, seen, lock = [], [], threading.Lock()

    def train(project, sync):
        with lock:
            snapshot = list(stored)
        time.sleep(0.2)  # a run takes a while; requests arrive meanwhile
        seen.append(snapshot)

    jobs = TrainingCoordinator(train)
    answers = []
    for i in range(30):
        with lock:
            stored.append(i)
        answers.append(jobs.request("p"))
    assert answers[0] == "started" and set(answers[1:]) == {"queued"}
    assert jobs.wait_idle("p", 10)
    assert len(seen) <= 2 and seen[-1] == list(range(30))
    assert jobs.runs("p") == len(seen)


def test_projects_run_independently_and_one_run_at_a_time():
    active, peak, lock = {}, {}, threading.Lock()

    def train(project, sync):
        with lock:
            active[project] = active.get(project, 0) + 1
            peak[project] = max(peak.get(project, 0), active[project])
        time.sleep(0.05)
        with lock:
            active[project] -= 1

    jobs = TrainingCoordinator(train)
    threads = [threading.Thread(target=jobs.request, args=(p,)) for p in ("a", "b") * 20]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert jobs.wait_idle("a", 10) and jobs.wait_idle("b", 10)
    assert peak == {"a": 1, "b": 1}


def test_a_failing_run_does_not_stop_the_next_and_sync_is_passed_on():
    calls = []

    def train(project, sync):
        calls.append(sync)
        if len(calls) == 1:
            time.sleep(0.1)
            raise RuntimeError("boom")

    jobs = TrainingCoordinator(train)
    jobs.request("p")
    jobs.request("p", sync=True)
    assert jobs.wait_idle("p", 5)
    assert calls == [False, True] and not jobs.is_training("p")


def test_shutdown_waits_for_the_running_run_and_refuses_new_ones():
    done = []

    def train(project, sync):
        time.sleep(0.3)
        done.append(project)

    jobs = TrainingCoordinator(train)
    jobs.request("p")
    jobs.request("p")  # queued: dropped by the shutdown
    time.sleep(0.05)
    assert jobs.shutdown(grace=5) and done == ["p"]
    assert jobs.request("q") == "stopping" and not jobs.is_training("q")


def test_shutdown_gives_up_after_the_grace_period():
    release = threading.Event()
    jobs = TrainingCoordinator(lambda project, sync: release.wait(5))
    jobs.request("p")
    time.sleep(0.05)
    t0 = time.perf_counter()
    assert jobs.shutdown(grace=0.2) is False
    assert time.perf_counter() - t0 < 1
    release.set()
