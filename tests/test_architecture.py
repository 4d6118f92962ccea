"""The house's rules (docs/design.md, "The house"), checked: layers and no circles (import-linter
contracts in pyproject.toml), no function-level import of globeflow's own modules except to reach an
optional extra, small files, a light ``import globeflow``, the command line generated from the config
dataclasses, one name for the guidance scale."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import globeflow
from globeflow import registry
from globeflow.apps.cli import build_parser, options

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "globeflow"
MAX_LINES = 400

#: Function-level imports of globeflow modules that are allowed, each with its reason.
LAZY_IMPORTS = {
    ("globeflow.apps.cli.commands", "globeflow.apps.server.run"): "the server extra (FastAPI, uvicorn) may be missing",
}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout and "4 kept" in result.stdout


def test_no_function_level_import_of_globeflow_modules():
    found = []
    for module, path in _modules():
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    target = _absolute(module, path.name == "__init__.py", node)
                elif isinstance(node, ast.Import):
                    target = next((a.name for a in node.names if a.name.startswith("globeflow")), "")
                else:
                    continue
                if target.startswith("globeflow") and (module, target) not in LAZY_IMPORTS:
                    found.append(f"{module}.{fn.name} imports {target} (line {node.lineno})")
    assert not found, "\n".join(found)


def test_no_source_file_is_over_the_limit():
    long = {str(p.relative_to(SRC)): n for _, p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_import_globeflow_is_light_and_python_m_works():
    heavy = ("healpy", "matplotlib", "transformers", "fastapi", "uvicorn", "faiss", "torchdiffeq", "astropy")
    code = f"import globeflow, sys; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    version = subprocess.run([sys.executable, "-m", "globeflow", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"globeflow {globeflow.__version__}"


def _subparser(command: str):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[command]


def _option_defaults(command: str) -> dict[str, object]:
    return {a.dest: a.default for a in _subparser(command)._actions if a.option_strings}


@pytest.mark.parametrize("command, config", [
    ("train", "TrainConfig"), ("train", "NetworkConfig"), ("train", "ModelConfig"), ("train", "DirectConfig"),
    ("map", "AnswerConfig"), ("map", "MapConfig"), ("predict", "PointConfig"), ("evaluate", "PointConfig"),
    ("log-prob", "LogProbConfig"), ("embed", "EmbedConfig"), ("serve", "ServeConfig")])
def test_every_setting_of_a_config_is_an_option_with_its_default(command, config):
    from globeflow.apps.cli import parser as parser_module

    cls = getattr(parser_module, config)
    hints = typing.get_type_hints(cls)
    defaults = _option_defaults(command)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(options._resolve(hints[f.name])[0]):
            continue  # a nested config: its own fields are checked
        if f.metadata.get("cli", True) is False:
            assert f.name not in defaults, f"{config}.{f.name} is set by the data or another option"
            continue
        assert f.name in defaults, f"globeflow {command} has no option for {config}.{f.name}"
        assert defaults[f.name] == f.default, f"{command} --{f.name}: {defaults[f.name]!r} != {f.default!r}"


def test_train_offers_every_model_kind_from_the_registry():
    choices = next(a for a in _subparser("train")._actions if a.dest == "model").choices
    assert tuple(choices) == tuple(registry.KINDS)
    for kind in registry.KINDS.values():
        assert kind.config_class(network=globeflow.NetworkConfig(cond_dim=4), kind=kind.name).kind == kind.name


def test_the_guidance_scale_has_one_name():
    bad = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in node.args.args + node.args.kwonlyargs]
                bad += [f"{module}.{node.name}({n})" for n in names if n in ("cfg", "cfg_scale", "guidance_scale")]
    assert not bad, bad
    from globeflow.inference import Geolocator

    for name in ("sample", "predict", "log_prob", "sample_with_log_prob", "density_maps", "locate"):
        assert "guidance" in inspect.signature(getattr(Geolocator, name)).parameters, name


def test_no_module_branches_on_a_kind_name():
    """Kinds are told apart by the registry's table (and the paths and heads it is made of), not by strings."""
    kinds = set(registry.KINDS)
    found = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Constant) and side.value in kinds:
                        found.append(f"{module}:{node.lineno} compares with {side.value!r}")
    assert not found, found
