"""The layering is enforced by `make lint`, not by goodwill: a copy of the code with one violation
planted must fail the same checks (import-linter's contracts in pyproject.toml, ruff's bans in
chalicelib/core/ruff.toml), and the code as it stands must pass them."""
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def tree(tmp_path):
    """A copy of the package and its lint configuration, importable from tmp_path only."""
    shutil.copytree(ROOT / "chalicelib", tmp_path / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(tree):
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=tree, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tree), "PATH": str(BIN)})


def ruff(tree, *paths):
    return subprocess.run([str(BIN / "ruff"), "check", "--no-cache", *paths], cwd=tree, capture_output=True,
                          text=True)


def plant(tree, module, line):
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_code_as_it_stands_keeps_every_layer_contract(tree):
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, line, reported", [
    # A core module importing boto3: the core would no longer be pure.
    ("chalicelib/core/clock.py", "import boto3", ["chalicelib.core is not allowed to import boto3",
                                                 "chalicelib.core.clock -> boto3"]),
    # A use case importing PynamoDB itself instead of going through the store.
    ("chalicelib/reporting.py", "from pynamodb.models import Model",
     ["chalicelib.reporting is not allowed to import pynamodb", "chalicelib.reporting -> pynamodb"]),
    # The store reaching up into a use case.
    ("chalicelib/aws/store.py", "from chalicelib import scanner", ["chalicelib.aws.store -> chalicelib.scanner"]),
    # The store evaluating a request itself instead of handing its facts to the use case.
    ("chalicelib/aws/records.py", "from chalicelib.core.clock import evaluate",
     ["chalicelib.aws is not allowed to import chalicelib.core.clock",
      "chalicelib.aws.records -> chalicelib.core.clock"]),
    # ... or parsing a contract, or deciding what is due.
    ("chalicelib/aws/records.py", "from chalicelib.core.policy import parse_contract",
     ["chalicelib.aws is not allowed to import chalicelib.core.policy"]),
    ("chalicelib/aws/outbox.py", "from chalicelib.core import alerts",
     ["chalicelib.aws is not allowed to import chalicelib.core.alerts"]),
    # A data module the store reads growing a rule: the store reaches it through that module.
    ("chalicelib/core/documents.py", "from chalicelib.core.tally import tally_day",
     ["chalicelib.aws is not allowed to import chalicelib.core.tally",
      "chalicelib.core.documents -> chalicelib.core.tally"]),
], ids=["core-imports-boto3", "use-case-imports-pynamodb", "store-imports-a-use-case", "store-imports-the-clock",
        "store-parses-a-contract", "store-imports-the-alerts", "store-reaches-the-tally-through-a-data-module"])
def test_an_import_across_the_layers_fails_the_lint_naming_it(tree, module, line, reported):
    plant(tree, module, f"{line}  # noqa: E402, F401")
    result = lint_imports(tree)
    assert result.returncode != 0
    for words in reported:
        assert words in result.stdout


def test_the_core_reading_the_clock_or_the_environment_fails_the_lint(tree):
    (tree / "chalicelib/core/probe.py").write_text(
        "import os\nfrom datetime import datetime\n\n\ndef stamp():\n"
        "    return datetime.now(), os.environ.get(\"SLA_STAGE\")\n")
    result = ruff(tree, "chalicelib/core/probe.py")
    assert result.returncode != 0
    assert "`datetime.datetime.now` is banned" in result.stdout
    assert "`os.environ` is banned" in result.stdout
    assert ruff(tree, "chalicelib/scanner.py").returncode == 0  # the bans are the core's alone


@pytest.mark.parametrize("module, line", [
    ("chalicelib/requests.py", "from chalicelib.aws.tables import RequestModel"),
    ("chalicelib/evaluation.py", "from chalicelib.aws import tables"),
], ids=["use-case-imports-a-model", "evaluation-imports-the-tables"])
def test_a_use_case_importing_the_tables_fails_the_lint(tree, module, line):
    """The store hands back StoredRequest, ContractVersion...: a PynamoDB model above chalicelib.aws
    would let items, and their attribute names, travel through the use cases again."""
    plant(tree, module, f"{line}  # noqa: E402, F401")
    result = lint_imports(tree)
    importer = module.removesuffix(".py").replace("/", ".")
    assert result.returncode != 0
    assert f"{importer} is not allowed to import chalicelib.aws.tables" in result.stdout
    assert f"{importer} -> chalicelib.aws.tables" in result.stdout


def test_the_tables_contract_names_every_module_above_the_store():
    """A new module of chalicelib is covered the day it is added: the contract lists them all."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    tables = next(c for c in contracts if c.get("forbidden_modules") == ["chalicelib.aws.tables"])
    modules = {f"chalicelib.{path.stem}" for path in (ROOT / "chalicelib").glob("*.py") if path.stem != "__init__"}
    packages = {f"chalicelib.{path.name}" for path in (ROOT / "chalicelib").iterdir()
                if (path / "__init__.py").exists()} - {"chalicelib.aws", "chalicelib.core"}
    assert set(tables["source_modules"]) == modules | packages
