"""Optimizer and LR-scheduler configurations against LeRobot 0.6.1's (reference values in
tests/data/training, made by tools/lerobot_reference/make_training_reference.py)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import draccus
import pytest
import torch
from safetensors.torch import load_file
from support import DATA

from dexloop.errors import TrainingConfigError, TrainingStateError
from dexloop.training.optimizers import (
    AdamConfig,
    AdamWConfig,
    MultiAdamConfig,
    OptimizerConfig,
    SGDConfig,
    load_optimizer_state,
    save_optimizer_state,
)
from dexloop.training.schedulers import (
    DiffuserSchedulerConfig,
    LRSchedulerConfig,
    load_scheduler_state,
    save_scheduler_state,
)

REFERENCE = DATA / "training"


def _schedule_cases():
    cases = json.loads((REFERENCE / "lr_schedules.json").read_text())
    return [
        pytest.param(case, id=f"{case['type']}-{case['fields'].get('name', '')}-{case['num_training_steps']}")
        for case in cases
    ]


@pytest.mark.parametrize("case", _schedule_cases())
def test_lr_schedule_equals_lerobot(case):
    config = LRSchedulerConfig.get_choice_class(case["type"])(**case["fields"])
    assert config.type == case["type"]
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=case["lr"])
    scheduler = config.build(optimizer, case["num_training_steps"])
    expected = {int(step): lr for step, lr in case["lrs"].items()}
    got = {}
    # Stepped for a while (LambdaLR's own bookkeeping), then the multiplier is read directly: it is
    # what LambdaLR multiplies the base lr by at that step.
    stepped = min(max(expected), 60)
    for step in range(stepped + 1):
        if step in expected:
            got[step] = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
    for step in expected:
        if step > stepped:
            got[step] = case["lr"] * scheduler.lr_lambdas[0](step)
    # Same arithmetic in the same order: equal to the last bit.
    assert got == expected


def test_default_configs_encode_as_lerobot():
    reference = json.loads((REFERENCE / "train_config.json").read_text())
    for name, encoded in reference["optimizers"].items():
        config = OptimizerConfig.get_choice_class(name)()
        assert config.type == name
        assert draccus.encode(config) == encoded, name
    for name, encoded in reference["schedulers"].items():
        assert draccus.encode(LRSchedulerConfig.get_choice_class(name)()) == encoded, name
    assert OptimizerConfig.default_choice_name() == "adam"


@dataclasses.dataclass
class _Flags:
    optimizer: OptimizerConfig | None = None
    scheduler: LRSchedulerConfig | None = None


def test_flags_parse_into_the_registry():
    flags = draccus.parse(
        _Flags,
        args=[
            "--optimizer.type=adamw",
            "--optimizer.lr=2e-5",
            "--optimizer.betas=[0.9,0.95]",
            "--scheduler.type=cosine_decay_with_warmup",
            "--scheduler.num_warmup_steps=10",
            "--scheduler.num_decay_steps=100",
            "--scheduler.peak_lr=2e-5",
            "--scheduler.decay_lr=1e-6",
        ],
    )
    assert isinstance(flags.optimizer, AdamWConfig)
    assert flags.optimizer.lr == 2e-5 and flags.optimizer.betas == (0.9, 0.95)
    assert flags.optimizer.weight_decay == 1e-2
    assert flags.scheduler.type == "cosine_decay_with_warmup"


def test_build_passes_fields_to_torch():
    params = [torch.nn.Parameter(torch.zeros(2))]
    adam = AdamConfig(lr=3e-4, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1).build(params)
    assert isinstance(adam, torch.optim.Adam)
    group = adam.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (3e-4, (0.8, 0.9), 1e-6, 0.1)
    sgd = SGDConfig(momentum=0.9, nesterov=True).build(params)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["nesterov"] is True
    # Param-group dicts (the way ACT gives its backbone another lr) keep their own values.
    groups = AdamWConfig(lr=1e-5).build(
        [{"params": params}, {"params": [torch.nn.Parameter(torch.ones(1))], "lr": 1e-6}]
    )
    assert [g["lr"] for g in groups.param_groups] == [1e-5, 1e-6]
    with pytest.raises(TrainingConfigError, match="multi_adam"):
        MultiAdamConfig().build(params)


def test_diffuser_rejects_unusable_names():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    with pytest.raises(TrainingConfigError, match="not a diffusers schedule"):
        DiffuserSchedulerConfig(name="cosinus", num_warmup_steps=1).build(optimizer, 10)
    with pytest.raises(TrainingConfigError, match="num_warmup_steps"):
        DiffuserSchedulerConfig(name="cosine").build(optimizer, 10)
    with pytest.raises(TrainingConfigError, match="step rules"):
        DiffuserSchedulerConfig(name="piecewise_constant").build(optimizer, 10)


class _Tiny(torch.nn.Module):
    """The reference script's model: same parameter names and shapes."""

    def __init__(self):
        super().__init__()
        self.first = torch.nn.Linear(3, 4)
        self.second = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.second(torch.tanh(self.first(x)))


def _tiny_model():
    return _Tiny()


def _tiny_step(model, optimizer, step):
    x = torch.linspace(-1, 1, 15).reshape(5, 3) * (step + 1)
    (model(x) ** 2).mean().backward()
    optimizer.step()
    optimizer.zero_grad()


def _assert_weights(model, path):
    expected = load_file(str(path))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-6, atol=1e-7, msg=key)


def _fresh(reference):
    model = _tiny_model()
    model.load_state_dict(load_file(str(reference / "model_init.safetensors")))
    optimizer = AdamWConfig(lr=1e-3, weight_decay=1e-4).build(model.parameters())
    scheduler = DiffuserSchedulerConfig(name="cosine", num_warmup_steps=2).build(optimizer, 10)
    return model, optimizer, scheduler


def test_training_state_files_match_lerobot(tmp_path):
    reference = REFERENCE / "optimizer"
    model, optimizer, scheduler = _fresh(reference)
    for step in range(3):
        _tiny_step(model, optimizer, step)
        scheduler.step()
    _assert_weights(model, reference / "model_step3.safetensors")
    save_optimizer_state(optimizer, tmp_path)
    save_scheduler_state(scheduler, tmp_path)
    lerobot = reference / "training_state"
    for name in ("optimizer_param_groups.json", "scheduler_state.json"):
        assert json.loads((tmp_path / name).read_text()) == json.loads((lerobot / name).read_text()), name
    ours, theirs = (
        load_file(str(tmp_path / "optimizer_state.safetensors")),
        load_file(str(lerobot / "optimizer_state.safetensors")),
    )
    assert sorted(ours) == sorted(theirs)
    assert "state/0/exp_avg" in ours
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype, key
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-6, atol=1e-9, msg=key)


def test_lerobot_training_state_resumes_here():
    reference = REFERENCE / "optimizer"
    model, optimizer, scheduler = _fresh(reference)
    model.load_state_dict(load_file(str(reference / "model_step3.safetensors")))
    load_optimizer_state(optimizer, reference / "training_state")
    load_scheduler_state(scheduler, reference / "training_state")
    assert scheduler.last_epoch == 3
    assert isinstance(optimizer.param_groups[0]["betas"], tuple)
    _tiny_step(model, optimizer, 3)
    scheduler.step()
    _assert_weights(model, reference / "model_step4.safetensors")
    assert scheduler.get_last_lr() == json.loads((reference / "lr_step4.json").read_text())


def test_multi_adam_state_in_named_folders(tmp_path):
    reference = REFERENCE / "multi_adam"
    model = _tiny_model()
    model.load_state_dict(load_file(str(reference / "model_init.safetensors")))
    config = MultiAdamConfig(lr=1e-3, optimizer_groups={"second": {"lr": 5e-4, "eps": 1e-6}})
    optimizers = config.build({"first": model.first.parameters(), "second": model.second.parameters()})
    assert optimizers["second"].param_groups[0]["eps"] == 1e-6
    assert optimizers["first"].param_groups[0]["eps"] == 1e-5
    x = torch.linspace(-1, 1, 15).reshape(5, 3)
    for _ in range(2):
        (model(x) ** 2).mean().backward()
        for single in optimizers.values():
            single.step()
            single.zero_grad()
    _assert_weights(model, reference / "model_step2.safetensors")
    save_optimizer_state(optimizers, tmp_path)
    for name in ("first", "second"):
        assert json.loads((tmp_path / name / "optimizer_param_groups.json").read_text()) == json.loads(
            (reference / "training_state" / name / "optimizer_param_groups.json").read_text()
        )
    fresh = config.build(
        {"first": _tiny_model().first.parameters(), "second": _tiny_model().second.parameters()}
    )
    load_optimizer_state(fresh, reference / "training_state")
    torch.testing.assert_close(
        fresh["second"].state_dict()["state"][0]["exp_avg"],
        optimizers["second"].state_dict()["state"][0]["exp_avg"],
    )


def test_damaged_training_state_is_a_typed_error(tmp_path):
    reference = REFERENCE / "optimizer"
    shutil.copytree(reference / "training_state", tmp_path / "state")
    state = tmp_path / "state"
    _, optimizer, scheduler = _fresh(reference)

    # Another model: one parameter tensor fewer.
    other = AdamWConfig().build([torch.nn.Parameter(torch.zeros(2)) for _ in range(3)])
    with pytest.raises(TrainingStateError, match="holds 4 parameters"):
        load_optimizer_state(other, state)

    (state / "scheduler_state.json").write_text(json.dumps({"base_lrs": [1e-3, 1e-3], "last_epoch": 3}))
    with pytest.raises(TrainingStateError, match="scheduler_state.json: key 'base_lrs'"):
        load_scheduler_state(scheduler, state)

    (state / "optimizer_state.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(TrainingStateError, match="optimizer_state.safetensors"):
        load_optimizer_state(optimizer, state)

    (state / "optimizer_param_groups.json").unlink()
    with pytest.raises(
        TrainingStateError, match="optimizer_param_groups.json: optimizer state file is missing"
    ):
        load_optimizer_state(optimizer, state)
    with pytest.raises(TrainingStateError, match="missing"):
        load_scheduler_state(scheduler, tmp_path / "nowhere")
