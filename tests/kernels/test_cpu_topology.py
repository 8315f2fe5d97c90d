"""Default thread count from a faked sysfs CPU tree: big cores only on big.LITTLE boards."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from edgegen import _native


def _fake_cpu(root: Path, cpu: int, *, core: int, package: int = 0, capacity: Optional[int] = None,
              online: Optional[str] = None) -> None:
    d = root / f"cpu{cpu}"
    (d / "topology").mkdir(parents=True)
    (d / "topology" / "core_id").write_text(f"{core}\n")
    (d / "topology" / "physical_package_id").write_text(f"{package}\n")
    if capacity is not None:
        (d / "cpu_capacity").write_text(f"{capacity}\n")
    if online is not None:
        (d / "online").write_text(f"{online}\n")


def _tree(tmp_path: Path, capacities: list, **kw) -> Path:
    root = tmp_path / "cpu"
    for i, cap in enumerate(capacities):
        _fake_cpu(root, i, core=i, capacity=cap, **kw)
    (root / "cpufreq").mkdir()  # sibling directories that are not CPUs are ignored
    (root / "cpuidle").mkdir()
    return root


def test_rk3588_uses_the_four_cortex_a76_cores(tmp_path: Path) -> None:
    root = _tree(tmp_path, [530, 530, 530, 530, 1024, 1024, 1024, 1024])
    assert _native.default_thread_count(str(root)) == 4


def test_qcs6490_prime_and_gold_cores_count_as_big(tmp_path: Path) -> None:
    # 4x Cortex-A55 + 3x A78 "gold" + 1x A78 "prime"
    root = _tree(tmp_path, [378, 378, 378, 378, 903, 903, 903, 1024])
    assert _native.default_thread_count(str(root)) == 4


def test_raspberry_pi_5_equal_capacities_use_every_core(tmp_path: Path) -> None:
    assert _native.default_thread_count(str(_tree(tmp_path, [1024] * 4))) == 4


def test_no_capacity_reported_counts_physical_cores_not_smt_siblings(tmp_path: Path) -> None:
    root = tmp_path / "cpu"
    for cpu in range(8):  # 4 cores x 2 SMT threads, no cpu_capacity (x86 servers)
        _fake_cpu(root, cpu, core=cpu % 4)
    assert _native.default_thread_count(str(root)) == 4
    topo = _native.cpu_topology(str(root))
    assert [c["id"] for c in topo] == list(range(8)) and all(c["capacity"] == 0 for c in topo)


def test_offline_cpus_are_left_out(tmp_path: Path) -> None:
    root = tmp_path / "cpu"
    _fake_cpu(root, 0, core=0, capacity=1024)  # cpu0 has no "online" file, as on real boards
    _fake_cpu(root, 1, core=1, capacity=1024, online="1")
    _fake_cpu(root, 2, core=2, capacity=1024, online="0")
    assert _native.default_thread_count(str(root)) == 2


def test_garbage_and_missing_tree_fall_back_to_something_sane(tmp_path: Path) -> None:
    root = tmp_path / "cpu"
    _fake_cpu(root, 0, core=0)
    (root / "cpu0" / "cpu_capacity").write_text("not a number\n")
    assert _native.default_thread_count(str(root)) == 1
    assert _native.default_thread_count(str(tmp_path / "missing")) >= 1


def test_the_real_machine_default_matches_the_pool() -> None:
    assert _native.default_thread_count() == _native.physical_cores() == _native.default_pool().size >= 1
