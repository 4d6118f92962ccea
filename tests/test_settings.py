"""Every numeric setting is checked where it is made: no NaN or infinity reaches a command (issue 16)."""

import dataclasses
import typing

import pytest

from globeflow.apps.cli import main
from globeflow.apps.server.predictor import ServeConfig
from globeflow.apps.tasks.blue_marble import BlueMarbleConfig
from globeflow.baselines.direct import DirectConfig
from globeflow.flow import ModelConfig
from globeflow.flow.network import NetworkConfig
from globeflow.flow.schedules import ScheduleConfig
from globeflow.inference.answers import AnswerConfig
from globeflow.inference.density import MapConfig
from globeflow.train import TrainConfig

CONFIGS = [TrainConfig, AnswerConfig, MapConfig, ServeConfig, BlueMarbleConfig, ScheduleConfig,
           lambda **kw: ModelConfig(NetworkConfig(cond_dim=4), **kw), lambda **kw: DirectConfig(NetworkConfig(cond_dim=4), **kw)]


def _float_fields(make):
    cls = type(make())
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls)
            if hints[f.name] is float or float in typing.get_args(hints[f.name])]


@pytest.mark.parametrize("make", CONFIGS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_every_float_setting_refuses_non_finite_values(make, bad):
    names = _float_fields(make)
    assert names, make
    for name in names:
        with pytest.raises(ValueError, match=f"{name} must be a finite number, got {bad}"):
            make(**{name: bad})


@pytest.mark.parametrize("option, value", [("--weight-decay", "nan"), ("--grad-clip", "nan"), ("--lr", "inf"),
                                           ("--lr", "-inf")])
def test_the_cli_refuses_non_finite_numbers_at_parse_time(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "run"), f"{option}={value}"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be a finite number, got '{value}'" in err
    assert not (tmp_path / "run").exists()


def test_train_ranges_refuse_nan_compared_values():
    # ``lr <= 0`` is False for NaN: the range checks are written so that NaN fails them too.
    for name, value in [("lr", 0.0), ("grad_clip", -1.0), ("weight_decay", -0.1), ("min_lr_ratio", 1.5)]:
        with pytest.raises(ValueError, match=f"train {name}"):
            TrainConfig(**{name: value})
