"""Device profiles: every shipped file loads, is covered, cites its sources; bad files fail."""

import re
import subprocess
import sys

import pytest

from edgeprune.target import TargetError, list_targets, load_target, parse_target

# Every shipped profile, with facts the test pins. A profile added to targets/
# without an entry here fails test_every_profile_is_covered.
EXPECTED = {
    "alif_e7": ("mcu", "cortex-m55"),
    "esp32": ("mcu", "xtensa-lx6"),
    "esp32s3": ("mcu", "xtensa-lx7"),
    "host": ("linux", "x86-64"),
    "nano33ble": ("mcu", "cortex-m4f"),
    "nucleo_l4r5zi": ("mcu", "cortex-m4f"),
    "pico": ("mcu", "cortex-m0plus"),
    "pico2": ("mcu", "cortex-m33"),
    "rpi4": ("linux", "cortex-a72"),
    "rpi5": ("linux", "cortex-a76"),
    "rpizero2w": ("linux", "cortex-a53"),
    "stm32f746g_disco": ("mcu", "cortex-m7"),
    "stm32h747i_disco": ("mcu", "cortex-m7"),
}


def test_every_profile_is_covered():
    assert set(list_targets()) == set(EXPECTED)


@pytest.mark.parametrize("target_id", sorted(EXPECTED))
def test_profile_loads_and_matches(target_id):
    t = load_target(target_id)
    assert (t.kind, t.core) == EXPECTED[target_id]
    assert t.runtime == ("tflm" if t.kind == "mcu" else "litert")
    assert t.budget.max_flash_bytes <= t.flash_bytes
    assert t.budget.max_ram_bytes <= t.ram_bytes
    assert t.reserve.flash_bytes < t.flash_bytes and t.reserve.ram_bytes < t.ram_bytes
    # a latency budget is the application's requirement, never a device fact
    assert t.budget.max_latency_ms is None
    if t.kind == "linux":  # figures are what the model adds: no nominal reserve
        assert (t.reserve.flash_bytes, t.reserve.ram_bytes) == (0, 0)
        assert "[reserve]" not in open(t.path, encoding="utf-8").read()
    assert t.arena_margin.reason
    if t.largest_ram_block_bytes is not None:
        assert t.largest_ram_block_bytes <= t.ram_bytes


@pytest.mark.parametrize("target_id", sorted(EXPECTED))
def test_hardware_numbers_cite_a_source(target_id):
    text = open(load_target(target_id).path, encoding="utf-8").read()
    assert re.search(r"^# \[1\] .*", text, re.M), "no numbered source"
    # a datasheet on the web, or for the host the machine itself, read at load time
    assert "https://" in text or (target_id == "host" and "/proc/cpuinfo" in text)
    sources = set(re.findall(r"^# (\[\d\]) ", text, re.M))
    for key in ("clock_hz", "flash_bytes", "ram_bytes", "largest_ram_block_bytes"):
        found = re.search(rf"^{key} = .*$", text, re.M)
        if found is None:
            continue
        line = found.group(0)
        cited = set(re.findall(r"\[\d\]", line.split("#", 1)[-1])) if "#" in line else set()
        # a hardware number cites a listed source, or says plainly it is not a hardware fact
        assert (cited and cited <= sources) or "not a hardware fact" in line, (
            f"{key} has no citation of a listed source: {line}"
        )


GOOD = {
    "name": "Test board",
    "kind": "mcu",
    "core": "cortex-m4f",
    "clock_hz": 64_000_000,
    "flash_bytes": 1_000_000,
    "ram_bytes": 256_000,
    "runtime": "tflm",
    "kernels": "cmsis-nn",
    "model_dtype": "int8",
    "reserve": {"flash_bytes": 100_000, "ram_bytes": 50_000},
    "arena_margin": {"fraction": 0.1, "bytes": 1024, "reason": "scratch buffers"},
    "budget": {"max_flash_bytes": 1_000_000, "max_ram_bytes": 200_000, "max_latency_ms": 100},
}


def bad(**changes):
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in GOOD.items()}
    for dotted, value in changes.items():
        section, _, key = dotted.rpartition("__")
        table = data[section] if section else data
        if value is None:
            table.pop(key)
        else:
            table[key] = value
    return data


def test_good_profile_parses():
    assert parse_target(bad(), "t.toml", "t").budget.max_latency_ms == 100.0


def test_budgets_are_optional_flash_and_ram_default_to_the_capacity():
    t = parse_target(bad(budget__max_latency_ms=None, budget__max_flash_bytes=None), "t", "t")
    assert (t.budget.max_flash_bytes, t.budget.max_ram_bytes) == (1_000_000, 200_000)
    assert t.budget.max_latency_ms is None
    data = bad()
    del data["budget"]
    assert parse_target(data, "t.toml", "t").budget.max_ram_bytes == 256_000


def _proc(key: str, path: str = "/proc/cpuinfo") -> list[str]:
    text = open(path, encoding="utf-8").read()
    return [
        v.strip() for k, _, v in (ln.partition(":") for ln in text.splitlines()) if k.strip() == key
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_host_profile_is_this_machine_read_from_proc():
    """The host profile states none of the figures it reads: they are this machine's."""
    import os

    t = load_target("host")
    assert set(t.read_from_this_machine) == {"cpu", "cores", "clock_hz", "ram_bytes"}
    memtotal_kb = int(_proc("MemTotal", "/proc/meminfo")[0].split()[0])
    assert t.ram_bytes == memtotal_kb * 1024 == t.budget.max_ram_bytes
    assert t.cores == len(_proc("processor"))
    freq = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
    if os.path.exists(freq):
        assert t.clock_hz == int(open(freq).read()) * 1000
    else:
        assert t.clock_hz == round(float(_proc("cpu MHz")[0]) * 1e6)
    assert t.cpu == (_proc("model name") or _proc("Model") or _proc("Hardware") or ["x"])[0]
    text = open(t.path, encoding="utf-8").read()
    assert not re.search(r"^(clock_hz|ram_bytes|cores|cpu) =", text, re.M)


def test_figures_read_from_a_machine_without_them_name_the_file_and_fix(tmp_path):
    from edgeprune import this_machine

    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Test CPU\n")
    assert this_machine.read(["cpu", "cores"], str(tmp_path)) == {"cpu": "Test CPU", "cores": 1}
    with pytest.raises(this_machine.MachineReadError) as err:
        this_machine.read(["clock_hz"], str(tmp_path))
    assert str(err.value) == (
        "cannot read clock_hz from this machine: no /sys/devices/system/cpu/cpu0/cpufreq/"
        "cpuinfo_max_freq and no 'cpu MHz' line in /proc/cpuinfo"
    )
    freq = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq"
    freq.mkdir(parents=True)
    (freq / "cpuinfo_max_freq").write_text("1800000\n")
    assert this_machine.read(["clock_hz"], str(tmp_path)) == {"clock_hz": 1_800_000_000}
    with pytest.raises(this_machine.MachineReadError, match="no MemTotal line in /proc/meminfo"):
        this_machine.read(["ram_bytes"], str(tmp_path))


@pytest.mark.parametrize(
    "changes,message",
    [
        (
            {"read_from_this_machine": ["clock_hz"]},
            "t.toml: clock_hz is both stated and read from this machine "
            "(read_from_this_machine); remove one",
        ),
        (
            {"read_from_this_machine": ["flash_bytes"]},
            "t.toml: read_from_this_machine = ['flash_bytes'] must be a list of: cpu, cores, "
            "clock_hz, ram_bytes",
        ),
    ],
)
def test_bad_read_from_this_machine_is_named(changes, message):
    with pytest.raises(TargetError) as err:
        parse_target(bad(**changes), "t.toml", "t")
    assert str(err.value) == message


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"clock_hz": -1}, "t.toml: clock_hz = -1 is out of range; it must be > 0"),
        ({"budget__max_ram_bytes": -5}, "budget.max_ram_bytes = -5 is out of range"),
        ({"flash_bytes": None}, "t.toml: missing key 'flash_bytes'"),
        (
            {"budget__max_latency": 3},
            "unknown key 'budget.max_latency'; did you mean 'max_latency_ms'",
        ),
        ({"kernels": "cmsis"}, "kernels = 'cmsis' is not one of: reference, cmsis-nn"),
        ({"runtime": "litert"}, "runtime = 'litert' does not run on kind = 'mcu'"),
        ({"reserve__ram_bytes": 256_000}, "reserve.ram_bytes = 256000 leaves nothing"),
        (
            {"budget__max_flash_bytes": 1_050_000},
            "budget.max_flash_bytes = 1050000 is more than the device's flash_bytes = 1000000",
        ),
        (
            {"largest_ram_block_bytes": 300_000},
            "largest_ram_block_bytes = 300000 is more than ram_bytes = 256000",
        ),
        ({"budgets": {}}, "unknown key 'budgets'; did you mean 'budget'"),
        ({"ram_bytes": "256 KB"}, "ram_bytes = '256 KB' must be int"),
    ],
)
def test_impossible_values_name_key_value_and_range(changes, message):
    with pytest.raises(TargetError, match=re.escape(message)):
        parse_target(bad(**changes), "t.toml", "t")


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(
        TargetError,
        match="unknown target 'nano33'; did you mean 'nano33ble'"
        r"\? known targets: alif_e7, esp32",
    ):
        load_target("nano33")


def test_target_file_by_path(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text(
        open(load_target("pico").path)
        .read()
        .replace("[budget]\n", "[budget]\nmax_latency_ms = -1.0\n")
    )
    with pytest.raises(TargetError, match="budget.max_latency_ms = -1.0 is out of range"):
        load_target(str(p))


def test_targets_commands_do_not_import_tensorflow():
    code = (
        "import sys\nfrom edgeprune.cli import main\n"
        "for args in (['targets'], ['targets', 'show', 'nano33ble']):\n"
        "    try:\n        main(args)\n    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "nano33ble" in proc.stdout and "Arduino Nano 33 BLE Sense" in proc.stdout
    assert "budget          flash (model + runtime + reserve) <= 1,048,576 B" in proc.stdout
    assert "latency set by your recipe ([budget] max_latency_ms or --max-latency-ms)" in (
        proc.stdout
    )
    table = proc.stdout.split("nano33ble:")[0]  # the list, before `targets show`
    assert table.splitlines()[0].split()[-2:] == ["latency", "budget"]
    assert all(line.endswith("set by your recipe") for line in table.splitlines()[2:15])
    assert " - " not in proc.stdout


@pytest.mark.parametrize(
    "changes,message",
    [
        (
            {"budget__max_latency_ms": float("inf")},
            "budget.max_latency_ms = inf is out of range; it must be > 0.0 and <= 86,400,000",
        ),
        (
            {"budget__max_latency_ms": float("nan")},
            "budget.max_latency_ms = nan is out of range",
        ),
        (
            {"latency": {"active_power_mw": float("inf"), "power_source": "datasheet"}},
            "latency.active_power_mw = inf is out of range; it must be > 0.0 and <= 1,000,000",
        ),
        (
            {"ram_bytes": 2**70},
            f"ram_bytes = {2**70} is out of range; it must be > 0 and <= 1,099,511,627,776",
        ),
        (
            {"clock_hz": 2**80},
            f"clock_hz = {2**80} is out of range; it must be > 0 and <= 10,000,000,000",
        ),
        ({"name": "evil\x1b[2Jboard"}, "name = 'evil\\x1b[2Jboard' holds control characters"),
        (
            {"arena_margin__reason": "a\nb"},
            "arena_margin.reason = 'a\\nb' holds control characters; use plain text",
        ),
    ],
)
def test_profile_numbers_are_finite_and_physical_and_text_printable(changes, message):
    with pytest.raises(TargetError, match=re.escape(message)):
        parse_target(bad(**changes), "t.toml", "t")


@pytest.mark.parametrize(
    "content,message",
    [
        (b'name = "\xff\xfe board"\n', "not valid TOML (byte 8 is not UTF-8); save it as UTF-8"),
        (b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "not valid TOML (nested too deeply"),
    ],
)
def test_unreadable_profile_toml_is_one_target_error(tmp_path, content, message):
    p = tmp_path / "board.toml"
    p.write_bytes(content)
    with pytest.raises(TargetError, match=re.escape(f"target file {p}: {message}")):
        load_target(str(p))


def test_profile_id_with_control_characters_is_refused(tmp_path):
    with pytest.raises(TargetError, match="holds control characters; use a plain name"):
        load_target(str(tmp_path / "bo\x07ard.toml"))


def test_cli_bad_profile_and_recipe_are_one_line_exit_1(tmp_path):
    from click.testing import CliRunner

    from edgeprune.cli import main

    board = tmp_path / "board.toml"
    data = bad(budget__max_latency_ms=float("inf"))
    board.write_text(
        "\n".join(
            f"{k} = {v!r}".replace("'", '"') for k, v in data.items() if not isinstance(v, dict)
        )
        + "\n"
        + "".join(
            f"[{t}]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in data[t].items())
            for t in ("reserve", "arena_margin", "budget")
        )
    )
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", "--target", str(board), "--out", str(out)])
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines()[-1] == (
        f"edgeprune: error: {board}: budget.max_latency_ms = inf is out of range; "
        f"it must be > 0.0 and <= 86,400,000"
    )
    recipe = tmp_path / "r.toml"
    recipe.write_bytes(b"seed = \xff\n")
    r = CliRunner().invoke(main, ["run", "--recipe", str(recipe), "--out", str(out)])
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == (
        f"edgeprune: error: recipe {recipe}: not valid TOML (byte 7 is not UTF-8); "
        f"save it as UTF-8 text"
    )
    assert not out.exists()


def test_a_figure_this_machine_does_not_give_refuses_the_profile_naming_the_fix(monkeypatch):
    from edgeprune import this_machine

    def no_clock(root="/"):
        raise this_machine.MachineReadError("no 'cpu MHz' line in /proc/cpuinfo")

    monkeypatch.setattr(this_machine, "clock_hz", no_clock)
    data = bad(clock_hz=None, read_from_this_machine=["clock_hz"])
    with pytest.raises(TargetError) as err:
        parse_target(data, "t.toml", "t")
    assert str(err.value) == (
        "t.toml: cannot read clock_hz from this machine: no 'cpu MHz' line in /proc/cpuinfo; "
        "state it in the profile and drop it from read_from_this_machine"
    )
