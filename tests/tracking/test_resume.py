"""Resume: re-running a multirun skips the jobs whose identical config already FINISHED
in the experiment; `tracking.skip_finished=false` runs them again."""

from __future__ import annotations

import pytest
from helpers.compose import compose
from helpers.sweeps import EXPLODING, TINY, children

from experiments.core import names
from experiments.core.digest import ADDED_LATER, config_hash, group_hash
from experiments.core.flatten import flatten


def digest(*overrides: str) -> str:
    return config_hash(compose(list(overrides)))


def test_the_digest_ignores_what_cannot_change_results():
    base = digest("data=synthetic")
    assert digest("data=synthetic", "training.verbose=0") == base
    assert digest("data=synthetic", "tracking.uri=http://127.0.0.1:5001") == base
    assert digest("data=synthetic", "tracking=server", "tracking.experiment=other") == base
    assert digest("data=synthetic", "training.steps_per_execution=7") == base
    assert digest("data=synthetic", "data.dir=/elsewhere") == base


def test_the_digest_follows_what_does_change_results():
    base = digest("data=synthetic")
    others = {
        digest("data=synthetic", "training.seed=7"),
        digest("data=synthetic", "optimizer.learning_rate=0.02"),
        digest("data=synthetic", "activation=elu"),
        digest("data=synthetic", "clipping=norm"),
        digest("data=synthetic", "data.noise=0.5"),
        digest("data=fashion_mnist"),
        digest("data=synthetic", "model.residual=true"),
        digest("data=synthetic", "schedule=one_cycle"),
        digest("data=synthetic", "optimizer=adamw"),
    }
    assert base not in others and len(others) == 9


def test_keys_added_later_are_left_out_only_at_the_default_that_reproduces_earlier_runs():
    """Each key of ADDED_LATER exists, and its neutral value is the default a config gets
    when it does not use the key: the earlier digests then hold (test below)."""
    defaults = flatten(compose([]))
    assert {key: defaults[key] for key in ADDED_LATER} == ADDED_LATER


def test_the_group_digest_is_the_digest_without_the_seed():
    """Runs that differ only by their seed are one configuration (tag group_hash)."""
    base = compose(["data=synthetic"])
    assert group_hash(compose(["data=synthetic", "training.seed=7"])) == group_hash(base)
    assert group_hash(compose(["data=synthetic", "activation=elu"])) != group_hash(base)
    assert group_hash(base) != config_hash(base)


def parents(workspace):
    runs = [r for r in workspace.runs() if r.data.tags.get("sweep") == "true"]
    return sorted(runs, key=lambda r: r.info.start_time)


@pytest.mark.slow
def test_rerunning_a_sweep_runs_only_what_has_not_finished(workspace):
    sweep = ["-m", *TINY, "training.epochs=2", "training.seed=1,2"]
    assert workspace.train(*sweep) == 0
    first = {r.info.run_id for r in workspace.runs() if r.data.tags.get("sweep") != "true"}
    assert len(first) == 2

    # The same sweep plus one new job: only the new one runs, nested under the new parent.
    assert workspace.train(*sweep[:-1], "training.seed=1,2,3") == 0
    client = workspace.client()
    parent = parents(workspace)[-1]
    new = children(client, parent)
    assert [r.data.params["training.seed"] for r in new] == ["3"]
    assert parent.data.metrics["children_skipped"] == 2
    assert parent.data.metrics["children_finished"] == 1
    skipped_for = {v for k, v in parent.data.tags.items() if k.startswith(names.SKIPPED_TAG_PREFIX)}
    assert skipped_for == first
    # The resumed sweep's report stands the earlier runs in for the skipped jobs.
    report_rows = (workspace.folder / "multirun" / "report" / "runs.csv").read_text()
    for run_id in first | {new[0].info.run_id}:
        assert run_id in report_rows

    # The flag turns it off: the same jobs run again.
    assert workspace.train(*sweep, "tracking.skip_finished=false") == 0
    again = children(client, parents(workspace)[-1])
    assert len(again) == 2 and not {r.info.run_id for r in again} & first


@pytest.mark.slow
def test_a_run_that_did_not_finish_is_run_again(workspace):
    sweep = ["-m", *TINY, "training.epochs=2", *EXPLODING]
    assert workspace.train(*sweep) == 0
    assert workspace.train(*sweep) == 0
    client = workspace.client()
    for parent in parents(workspace):
        runs = children(client, parent)
        assert [r.info.status for r in runs] == ["FAILED"]
        assert parent.data.metrics["children_skipped"] == 0


# Digests of configs recorded by the lab before its modules moved into packages: a sweep
# started then is still recognised, and its finished jobs skipped, when resumed now.
RECORDED_DIGESTS = {
    (): "e6faa065e270581c5ef3",
    ("experiment=selu_deep",): "43094b4821a450184693",
    ("data=synthetic", "training.epochs=3", "activation=elu"): "18648cca5ac05aa3add4",
    ("experiment=transfer",): "fa03216c2a8defd71956",
    ("experiment=batchnorm_before", "training.seed=3"): "bfa3f897939fd48872a4",
}


def test_digests_recorded_by_earlier_versions_are_unchanged():
    for overrides, digest in RECORDED_DIGESTS.items():
        assert config_hash(compose(list(overrides))) == digest, overrides
