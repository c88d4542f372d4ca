"""Fault injection: killed sweeps, concurrent workers, corrupt records, a full disk and bad input lose nothing.

Each test provokes the fault for real: worker processes die by SIGKILL, several processes race on one store, files
are truncated on disk, and writes fail through the operating system's own file-size limit.
"""
import collections
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from minarch_core.analyses import grids, pruning
from minarch_core.engine import data, profiles, sweep, train
from minarch_core.engine.config import RunConfig
from minarch_core.engine.errors import ConfigError, StoreError
from minarch_core.engine.store import Store

pytestmark = pytest.mark.subprocess  # sweeps in child processes, killed and raced

CHILD = textwrap.dedent("""
    import json, os, signal, sys, time
    import torch
    from minarch_core.engine import sweep
    from minarch_core.engine.config import RunConfig
    spec = json.loads(sys.argv[1])
    if spec.get("torn_write_at"):  # die by SIGKILL halfway through writing the n-th model file
        real_save, calls = torch.save, []
        def torn_save(obj, path):
            calls.append(path)
            real_save(obj, path)
            if len(calls) == spec["torn_write_at"]:
                with open(path, "r+b") as f:
                    f.truncate(os.path.getsize(path) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
        torch.save = torn_save
    if spec.get("signal_training"):  # touch <signal_training>.<n> as the n-th bundle starts training
        from minarch_core.engine import train
        real_bundle, started = train.train_bundle, []
        def signalled(cfgs, *a, **kw):
            started.append(1)
            open(spec["signal_training"] + "." + str(len(started)), "w").close()
            return real_bundle(cfgs, *a, **kw)
        train.train_bundle = signalled
    lost, real_rename = [], os.rename
    def counted_rename(src, dst):  # a rename onto a run another worker stored first: a race this worker lost
        try:
            real_rename(src, dst)
        except OSError:
            if os.path.exists(dst):
                lost.append(str(dst))
            raise
    os.rename = counted_rename
    if spec.get("wait_for"):  # ready (imports done), then start together with the other workers
        open(spec["wait_for"] + "." + str(os.getpid()), "w").close()
        while not os.path.exists(spec["wait_for"]):
            time.sleep(0.001)
    configs = [RunConfig.from_dict(c) for c in spec["configs"]]
    table = sweep.run(configs, spec["store"], device="cpu", progress=False)
    print(json.dumps({"runs": sorted(table.run_id), "lost": len(lost)}))
""")


def configs(widths=(2, 3, 4, 5, 6, 7), seeds=(0,), epochs=2, **kw):
    return [RunConfig("mnist", "dnn", {"widths": [w]}, seed=s, epochs=epochs, val_per_class=10, train_per_class=30,
                      **kw) for w in widths for s in seeds]


def start(cfgs, store, **spec):
    spec = {"configs": [c.to_dict() for c in cfgs], "store": str(store), **spec}
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def fingerprints(store: Store) -> dict[str, str]:
    """Run id -> hash of every byte of its record: a completed run must never change."""
    out = {}
    for run in store.runs():
        digest = hashlib.sha256()
        for name in sorted(os.listdir(run.path)):
            digest.update((run.path / name).read_bytes())
        out[run.run_id] = digest.hexdigest()
    return out


@pytest.fixture
def env(tiny_data, tmp_path):
    data.load("mnist", val_per_class=10, train_per_class=30)  # the array cache exists before any worker starts
    return Store(tmp_path / "results")


def count_training(monkeypatch):
    trained, real = [], train.train_bundle
    monkeypatch.setattr(train, "train_bundle", lambda cfgs, *a, **kw: trained.extend(c.run_id for c in cfgs)
                        or real(cfgs, *a, **kw))
    return trained


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_sweep_killed_mid_bundle_resumes_and_keeps_what_it_finished(env, monkeypatch, precision):
    cfgs = configs(epochs=150, seeds=(0, 1, 2), train_precision=precision)  # a bundle per seed, its six DNNs one
    # program of about a second: at 40 epochs a bundle took 0.25 s, and the two left could both finish within the
    # wait below
    training = env.root.parent / "training"
    child = start(cfgs, env.root, signal_training=str(training))
    deadline = time.monotonic() + 120
    while not (training.parent / "training.2").exists() and time.monotonic() < deadline:  # a bundle stored, the
        time.sleep(0.005)  # next one training now
    assert (training.parent / "training.2").exists(), "the second bundle never started"
    time.sleep(0.1)  # into its program, not at its first line
    child.send_signal(signal.SIGKILL)
    child.wait()
    before = fingerprints(env)
    assert 1 <= len(before) < len(cfgs), "the kill should land mid-sweep"
    per_bundle = collections.Counter(run.config.seed for run in env.runs())  # a bundle per seed
    assert sum(n % 6 != 0 for n in per_bundle.values()) <= 1  # whole bundles but the one being stored, if any
    trained = count_training(monkeypatch)
    table = sweep.run(cfgs, env)
    assert sorted(table.run_id) == sorted(c.run_id for c in cfgs)
    assert sorted(trained) == sorted(set(table.run_id) - set(before))  # only the unfinished runs trained again
    after = fingerprints(env)
    assert {k: after[k] for k in before} == before  # every completed run intact and byte-identical


@pytest.mark.parametrize("torn_write_at", [1, 3])
def test_a_sweep_killed_halfway_through_a_write_never_reads_the_torn_record(env, monkeypatch, torn_write_at):
    cfgs = configs()
    child = start(cfgs, env.root, torn_write_at=torn_write_at)  # one bundle, killed while storing its runs
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(list(env.runs())) == torn_write_at - 1  # the torn run is not a result
    assert any((env.root / "mnist" / ".tmp").iterdir())  # it lies in the temporary folder, never read
    trained = count_training(monkeypatch)
    table = sweep.run(cfgs, env)
    assert len(trained) == len(cfgs) - torn_write_at + 1 and len(table) == len(cfgs)
    assert table.run_id.is_unique and (table.status == "ok").all()
    assert all(len(run.history) == 3 for run in env.runs())  # every stored record reads in full


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_worker_processes_fill_one_store_once(env, tmp_path, workers):
    every = configs(widths=(2, 3, 4, 5), seeds=(0, 1))
    go = tmp_path / "go"
    children = [start(every[i:] + every[:i], env.root, wait_for=str(go))  # overlapping, shifted
                for i in range(0, len(every), len(every) // workers)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.*"))) < len(children) and time.monotonic() < deadline:
        time.sleep(0.01)  # every worker ready: then they start at once, not staggered by their imports
    go.touch()
    outputs = [child.communicate(timeout=300) for child in children]
    assert all(child.returncode == 0 for child in children), [err for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    assert all(r["runs"] == sorted(c.run_id for c in every) for r in reports)  # each saw every run
    assert sum(r["lost"] for r in reports) >= 1, "no race happened: the test proved nothing"
    stored = sorted(p.name for p in (env.root / "mnist").iterdir() if not p.name.startswith("."))
    assert stored == sorted(c.run_id for c in every)  # one folder per run: no duplicates, no gaps
    assert not any((env.root / "mnist" / ".tmp").iterdir())  # a worker that lost a race cleaned up after itself
    assert len(env.table("mnist")) == len(every)


def test_two_sweeps_on_one_dask_cluster_fill_one_store_once(env):
    distributed = pytest.importorskip("distributed")
    every = configs(widths=(2, 3, 4, 5), seeds=(0, 1))
    halves = [every[:6], every[2:]]  # overlapping
    with distributed.LocalCluster(n_workers=4, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        results, errors = [], []

        def sweep_half(cfgs):
            try:
                results.append(sweep.run(cfgs, env, executor=client.get_executor(), device="cpu"))
            except Exception as err:  # noqa: BLE001  (re-raised below, in the test's thread)
                errors.append(err)
        threads = [threading.Thread(target=sweep_half, args=(h,)) for h in halves]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert not errors and [len(r) for r in results] == [6, 6]
    table = env.table("mnist")
    assert sorted(table.run_id) == sorted(c.run_id for c in every) and table.run_id.is_unique


def test_a_corrupt_record_is_set_aside_and_retrained_by_the_next_sweep(env, monkeypatch):
    cfgs = configs(widths=(2, 3))
    sweep.run(cfgs, env)
    history = env.path(cfgs[1]) / "history.parquet"
    history.write_bytes(history.read_bytes()[:100])  # truncated Parquet
    trained = count_training(monkeypatch)
    with pytest.warns(UserWarning, match=f"corrupt run record .*{cfgs[1].run_id}.*trained again"):
        table = sweep.run(cfgs, env)
    assert trained == [cfgs[1].run_id] and len(table) == 2
    assert [p.name.split(".")[0] for p in (env.root / "mnist" / ".corrupt").iterdir()] == [cfgs[1].run_id]


def test_a_full_disk_is_a_clear_error_and_the_store_stays_as_it_was(env):
    cfgs = configs(widths=(2, 3))
    sweep.run(cfgs[:1], env)
    before = fingerprints(env)
    # a real failing write: the OS refuses to grow a file past 4 kB (EFBIG), as it refuses on a full disk (ENOSPC)
    code = textwrap.dedent(f"""
        import resource, signal, sys
        from minarch_core.engine import sweep
        from minarch_core.engine.config import RunConfig
        from minarch_core.engine.errors import StoreError
        cfgs = [RunConfig.from_dict(c) for c in {[c.to_dict() for c in cfgs]!r}]
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            sweep.run(cfgs, {str(env.root)!r}, device="cpu")
        except StoreError as err:
            print(err)
            sys.exit(3)
    """)
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.returncode == 3, child.stderr
    assert f"cannot write run {cfgs[1].run_id}" in child.stdout and "the store is unchanged" in child.stdout
    assert fingerprints(env) == before and not any((env.root / "mnist" / ".tmp").iterdir())


def test_no_space_left_names_the_fix(env, monkeypatch):
    cfg = configs()[0]
    result = train.train(cfg, device="cpu")

    def full(*a, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("minarch_core.engine.store.torch.save", full)
    with pytest.raises(StoreError, match="No space left on device.*give it free space.*the store is unchanged"):
        env.put(cfg, result)
    assert env.get(cfg) is None and not any((env.root / "mnist" / ".tmp").iterdir())


@pytest.mark.parametrize("make, message", [
    (lambda: data.spec("imagenet"), "unknown dataset 'imagenet'"),
    (lambda: RunConfig("mnist", "rnn"), "unknown family 'rnn'"),
    (lambda: profiles.get("huge"), "unknown profile 'huge'"),
    (lambda: RunConfig("mnist", "dnn", {"widths": [0]}), "dnn widths must be integer"),
    (lambda: RunConfig("mnist", "dnn", {"widths": []}), "dnn widths must be a non-empty list"),
    (lambda: RunConfig("mnist", "cnn", {"channels": 0}), "cnn channels must be integer"),
    (lambda: RunConfig("mnist", "vit", {"dim": 10, "heads": 4}), "dim 10 is not divisible by heads 4"),
    (lambda: RunConfig("mnist", "dnn", epochs=-1), "epochs must be an integer >= 0"),
    (lambda: RunConfig("mnist", "dnn", lr="fast"), "lr must be a finite number"),
    (lambda: grids.quantize(torch.ones(3), 0), "bits must be an integer in 1..16"),
    (lambda: pruning.prune_to(torch.nn.Linear(2, 2), 1.5), "sparsity must be a fraction in 0..1"),
])
def test_bad_input_names_the_problem_and_the_fix(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
