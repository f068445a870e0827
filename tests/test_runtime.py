"""mer_jax.runtime: the huge-page malloc environment and the commands' re-execution into it."""
import os
import subprocess
import sys

import pytest

from mer_jax import runtime

glibc_linux = pytest.mark.skipif(
    not runtime._applies({}), reason="the malloc tunable applies to Linux with glibc only")


@glibc_linux
def test_environment_adds_the_tunable_and_keeps_the_users():
    assert runtime.malloc_environment({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    env = runtime.malloc_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "A": "b"})
    assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "A": "b"}
    own = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    assert runtime.malloc_environment(own) == own           # the user's choice wins
    assert "GLIBC_TUNABLES" not in runtime.malloc_environment({"MER_JAX_MALLOC": "system"})


@glibc_linux
@pytest.mark.parametrize("opt_out", [False, True])
def test_a_command_runs_once_in_the_malloc_environment(opt_out):
    """run_command re-executes the process once (same pid, arguments kept) before main runs."""
    code = ("import os, sys; from mer_jax.runtime import run_command, malloc_status\n"
            "sys.exit(run_command(lambda: print(os.getpid(), sys.argv[1:], malloc_status()) or 3))")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if opt_out:
        env["MER_JAX_MALLOC"] = "system"
    done = subprocess.Popen([sys.executable, "-c", code, "--flag", "x y"], env=env,
                            stdout=subprocess.PIPE, text=True)
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 3
    expected = "system default" if opt_out else "glibc.malloc.hugetlb=1"
    assert out.splitlines() == [f"{done.pid} ['--flag', 'x y'] {expected}"]
