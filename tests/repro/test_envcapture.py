"""Tests for gitrepro.repro.envcapture: the environment a run record holds (python, packages, lock
files, allowlisted variables), its hash, and which interpreter a command runs."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from gitrepro.repro import envcapture
from helpers_runs import PY


def test_the_environment_lists_python_packages_lock_files_and_allowed_variables(tmp_path):
    (tmp_path / "requirements-dev.txt").write_text("pytest\n")
    (tmp_path / "uv.lock").write_text("lock\n")
    env = envcapture.capture_environment(tmp_path, environ={"LANG": "C.UTF-8", "CUDA_VISIBLE_DEVICES": "0",
                                                           "HOME": "/root", "USER": "me"})
    assert env["python"].count(".") == 2 and env["packages"]["blake3"]
    assert set(env["lock_files"]) == {"requirements-dev.txt", "uv.lock"}
    assert env["variables"] == {"CUDA_VISIBLE_DEVICES": "0", "LANG": "C.UTF-8"}
    assert isinstance(env["gpus"], list)
    json.dumps(env)


def test_the_environment_hash_ignores_volatile_fields_but_not_packages():
    env = {"python": "3.11.7", "packages": {"a": "1"}, "executable": "/x/python", "platform": "Linux-6.1"}
    same = dict(env, executable="/y/python", platform="Linux-6.2")
    other = dict(env, packages={"a": "2"})
    assert envcapture.environment_hash(env) == envcapture.environment_hash(same)
    assert envcapture.environment_hash(env) != envcapture.environment_hash(other)


def test_another_pythons_packages_are_probed_in_that_python():
    other = shutil.which("python3", path="/usr/bin:/bin")
    if other is None or os.path.realpath(other) == os.path.realpath(PY):
        pytest.skip("no second Python interpreter on this machine")
    env = envcapture.capture_environment(None, python=other)
    assert os.path.realpath(env["executable"]) == os.path.realpath(other)


def test_only_a_python_command_names_its_interpreter():
    assert envcapture.interpreter_for([PY, "train.py"]) == PY
    assert envcapture.interpreter_for(["sh", "-c", "true"]) is None
    assert envcapture.interpreter_for([]) is None
