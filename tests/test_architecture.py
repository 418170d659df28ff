"""The layering is enforced by `make lint`, not by goodwill: a copy of the code with one violation
planted must fail the same checks (import-linter's contracts in pyproject.toml, ruff's bans in
pyproject.toml and chalicelib/core/ruff.toml), and the code as it stands must pass them."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def tree(tmp_path):
    """A copy of the package and its lint configuration, importable from tmp_path only."""
    shutil.copytree(ROOT / "chalicelib", tmp_path / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "app.py"):
        shutil.copy(ROOT / name, tmp_path / name)
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


def assert_ruff_refuses(tree, module, line, reported):
    """`line` added to `module` (a new module when there is none) fails ruff, naming `reported`."""
    path = tree / module
    if path.exists():
        plant(tree, module, f"{line}  # noqa: E402, F401, I001")
    else:
        path.write_text(f"{line}  # noqa: F401\n")
    result = ruff(tree, module)
    assert result.returncode != 0
    assert reported in result.stdout, result.stdout


def test_the_code_as_it_stands_keeps_every_layer_contract(tree):
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, line, reported", [
    # A core module importing boto3: the core would no longer be pure.
    ("chalicelib/core/clock.py", "import boto3", ["chalicelib.core is not allowed to import boto3",
                                                 "chalicelib.core.clock -> boto3"]),
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
    # ... or deciding who is told, what is re-checked, when to retry and when to give up.
    ("chalicelib/aws/outbox.py", "from chalicelib.core.delivery import retry_delay",
     ["chalicelib.aws is not allowed to import chalicelib.core.delivery"]),
    # A data module the store reads growing a rule: the store reaches it through that module.
    ("chalicelib/core/documents.py", "from chalicelib.core.tally import tally_day",
     ["chalicelib.aws is not allowed to import chalicelib.core.tally",
      "chalicelib.core.documents -> chalicelib.core.tally"]),
], ids=["core-imports-boto3", "store-imports-a-use-case", "store-imports-the-clock",
        "store-parses-a-contract", "store-imports-the-alerts", "outbox-asks-the-delivery-rules",
        "store-reaches-the-tally-through-a-data-module"])
def test_an_import_across_the_layers_fails_the_lint_naming_it(tree, module, line, reported):
    plant(tree, module, f"{line}  # noqa: E402, F401")
    result = lint_imports(tree)
    assert result.returncode != 0
    for words in reported:
        assert words in result.stdout


def test_a_module_nobody_placed_in_a_layer_fails_the_lint_naming_it(tree):
    """A new module is not free to import anything: until it has a layer, the layers contract is broken."""
    (tree / "chalicelib/zz_probe.py").write_text("from chalicelib import scanner  # noqa: F401\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "The following modules are not listed as layers" in result.stdout
    assert "- chalicelib.zz_probe" in result.stdout


@pytest.mark.parametrize("module, line, reported", [
    # A module nobody listed anywhere: the ban is by name, not by a list of modules.
    ("chalicelib/zz_probe.py", "import boto3", "`boto3` is banned: only chalicelib/aws"),
    ("chalicelib/zz_probe.py", "import botocore.exceptions", "`botocore` is banned: only chalicelib/aws"),
    # A use case reading a table itself instead of going through the store.
    ("chalicelib/reporting.py", "from pynamodb.models import Model", "`pynamodb` is banned: only chalicelib/aws"),
    # The shell calling AWS itself instead of a use case.
    ("app.py", "from boto3.dynamodb.conditions import Key", "`boto3` is banned: only chalicelib/aws"),
    # The core, whose own table of bans replaces pyproject.toml's.
    ("chalicelib/core/clock.py", "import boto3", "`boto3` is banned: the core calls no AWS"),
], ids=["new-module-imports-boto3", "new-module-imports-botocore", "use-case-imports-pynamodb",
        "shell-imports-boto3", "core-imports-boto3"])
def test_aws_imported_outside_chalicelib_aws_fails_the_lint_naming_it(tree, module, line, reported):
    assert_ruff_refuses(tree, module, line, reported)
    assert ruff(tree, "chalicelib/aws/store.py").returncode == 0  # the store is where AWS is called


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
    ("chalicelib/zz_probe.py", "import chalicelib.aws.tables"),
], ids=["use-case-imports-a-model", "evaluation-imports-the-tables", "new-module-imports-the-tables"])
def test_a_module_above_the_store_importing_the_tables_fails_the_lint(tree, module, line):
    """The store hands back StoredRequest, ContractVersion...: a PynamoDB model above chalicelib.aws
    would let items, and their attribute names, travel through the use cases again. The ban goes by
    the imported name, so it covers a module added later too."""
    assert_ruff_refuses(tree, module, line, "`chalicelib.aws.tables` is banned: the tables stay in the store")
    assert ruff(tree, "chalicelib/aws/store.py").returncode == 0  # the store is where the tables are used
