"""The parts of bench/policy_check_server.py whose mistakes would silently skew its figures
(the benchmark itself never runs in the suite)."""

from bench.policy_check_server import (
    is_backend_of,
    parse_cpu_list,
    parse_proc_stat,
    readme_gunicorn_args,
)


def stat_line(comm: str, utime=1234, stime=56, cutime=7890, cstime=12) -> str:
    fields = ["S", "1", "100", "100", "0", "-1", "4194560", "8", "0", "0", "0"]
    fields += [str(utime), str(stime), str(cutime), str(cstime), "20", "0", "1", "0", "5", "0"]
    return f"4242 ({comm}) " + " ".join(fields) + "\n"


def test_cpu_times_are_read_after_a_process_name_with_spaces_and_parentheses():
    stat = parse_proc_stat(stat_line("gunicorn: worker (a) [x) y"))
    assert stat.pid == 4242
    assert stat.comm == "gunicorn: worker (a) [x) y"
    assert stat.ppid == 1
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime) == (1234, 56, 7890, 12)
    assert stat.own == 1290
    assert stat.with_reaped_children == 1234 + 56 + 7890 + 12


def test_cpu_times_of_this_process_parse():
    with open("/proc/self/stat") as handle:
        stat = parse_proc_stat(handle.read())
    assert stat.utime + stat.stime > 0


def test_only_backends_of_the_benchmark_database_are_counted():
    db = "tam_b_srv_1000"
    assert is_backend_of(f"postgres: 15/main: postgres {db} 127.0.0.1(43544) idle", db)
    assert is_backend_of(f"postgres: postgres {db} [local] SELECT", db)
    assert not is_backend_of("postgres: 15/main: postgres tam_b_srv_100000 127.0.0.1(1) idle", db)
    assert not is_backend_of(f"postgres: 15/main: autovacuum worker {db}", db)
    assert not is_backend_of(f"python bench.py {db}", db)


def test_cpu_lists_parse_like_taskset():
    assert parse_cpu_list("0") == {0}
    assert parse_cpu_list("1-3,6") == {1, 2, 3, 6}


def test_the_default_server_is_the_readme_deployment_command():
    args = readme_gunicorn_args()
    assert "tam_portal.wsgi" in args
    assert "-b" not in args and "--bind" not in args
    assert "-w" in args or "--workers" in args or any(a.startswith("--workers=") for a in args)
