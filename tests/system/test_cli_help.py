"""System tests for the command-line conventions and the man pages.

What an administrator meeting postern for the first time tries:
`postern --version`, `postern --help`, `postern COMMAND --help` for every
command the help lists, each daemon's `-V`; and the man pages that
`make install` installs: postern-conf(5), generated from the parameter
table, must render with `man` and list every parameter of
`postern conf -d` with that default; postern(1) and postern-master(5)
must render without groff warnings.
"""

import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with open(os.path.join(REPO, "VERSION")) as f:
    VERSION = f.read().strip()


def env_without_mail_config():
    env = dict(os.environ)
    env.pop("MAIL_CONFIG", None)
    return env


def listed_commands(postern):
    """The command names of `postern --help`, in order."""
    r = postern("--help")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    start = lines.index("commands:") + 1
    names = []
    for line in lines[start:]:
        if not line.strip():
            break
        m = re.match(r"^  (\S+)\s{2,}\S", line)
        assert m, f"not 'NAME  summary': {line!r}"
        names.append(m.group(1))
    return names


def test_version(postern):
    for flag in ("--version", "-V"):
        r = postern(flag)
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"postern {VERSION}\n"
        assert r.stderr == ""


def test_help_lists_every_command_once(postern):
    r = postern("--help")
    assert r.returncode == 0
    assert r.stdout.startswith("usage: postern ")
    assert r.stderr == ""
    names = listed_commands(postern)
    assert len(names) == len(set(names))
    for expected in ("conf", "check", "map", "db", "domain", "user", "alias", "sendmail",
                     "queue", "trace", "start", "stop", "reload", "status"):
        assert expected in names
    # -h is the same as --help for postern itself
    assert postern("-h").stdout == r.stdout


def test_every_command_has_help(postern):
    for name in listed_commands(postern):
        r = postern(name, "--help")
        assert r.returncode == 0, f"{name} --help: {r.returncode} {r.stderr}"
        assert r.stdout.startswith(f"postern {name} - "), f"{name}: {r.stdout!r}"
        assert f"postern [-c DIR] [-v] {name}" in r.stdout
        assert r.stderr == ""
        # -h asks for help too, except where it has its own meaning
        if name not in ("conf", "sendmail"):
            h = postern(name, "-h")
            assert h.returncode == 0, f"{name} -h: {h.stderr}"
            assert h.stdout == r.stdout
        # --help wins wherever it is, before "--"
        assert postern("-c", "/nonexistent", name, "-v", "--help").stdout == r.stdout


def test_h_keeps_its_meaning_for_conf(postern):
    r = postern("conf", "-d", "-h", "mail_name", env=env_without_mail_config())
    assert r.returncode == 0, r.stderr
    assert r.stdout == "postern\n"


def test_unknown_options_are_usage_errors(postern):
    for args in (("--bogus",), ("-Z",), ("conf", "--bogus"), ("user", "--bogus"),
                 ("queue", "-Z"), ("map", "-Z", "query", "k", "inline:{k=v}")):
        r = postern(*args)
        assert r.returncode == 64, f"{args}: {r.returncode}"
        assert "usage:" in r.stderr, f"{args}: {r.stderr!r}"
        assert r.stdout == ""


def test_compatibility_names_keep_sendmail_options(postern_build, tmp_path):
    """Run as sendmail or mailq, --help is Sendmail's unknown option."""
    binary = os.path.join(postern_build, "bin", "postern")
    for name in ("sendmail", "mailq"):
        link = tmp_path / name
        link.symlink_to(binary)
        r = subprocess.run([str(link), "--help"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 64, r.stderr
        assert "usage: sendmail" in r.stderr
        assert "commands:" not in r.stdout + r.stderr


def test_every_daemon_prints_its_version(postern_build):
    bindir = os.path.join(postern_build, "bin")
    daemons = sorted(n for n in os.listdir(bindir) if n != "postern")
    assert "master" in daemons and "smtpd" in daemons
    for name in daemons:
        # No configuration: -V must answer before reading any.
        r = subprocess.run([os.path.join(bindir, name), "-V", "-c", "/nonexistent"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, f"{name} -V: {r.returncode} {r.stderr}"
        assert r.stdout == f"{name} {VERSION}\n"


@pytest.fixture(scope="module")
def installed_man(tmp_path_factory):
    """`make install DESTDIR=...`; returns {page file name: path}."""
    dest = tmp_path_factory.mktemp("destdir")
    args = ["make", "-s", "-C", REPO, "install", f"DESTDIR={dest}"]
    if os.environ.get("POSTERN_SANITIZE") == "1":
        args.append("SANITIZE=1")
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    pages = {}
    for root, _dirs, files in os.walk(dest):
        if os.path.basename(root) in ("man1", "man5"):
            for name in files:
                pages[name] = os.path.join(root, name)
    assert set(pages) == {"postern.1", "postern-master.5", "postern-conf.5"}
    for name, path in pages.items():
        section = name.rsplit(".", 1)[1]
        assert path.endswith(os.path.join("share", "man", f"man{section}", name))
    return pages


def render(path):
    """The page as `man` shows it: plain ASCII, wide enough not to wrap much."""
    assert shutil.which("man"), "man (Debian's man-db) is missing: scripts/deps.sh test"
    env = dict(os.environ, LC_ALL="C", MANWIDTH="200", MANPAGER="cat", PAGER="cat")
    r = subprocess.run(["man", "-l", path], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_static_pages_render_without_warnings(installed_man):
    for name in ("postern.1", "postern-master.5", "postern-conf.5"):
        r = subprocess.run(["groff", "-man", "-ww", "-z", installed_man[name]],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stderr == "", f"{name}: {r.stderr}"
    page = render(installed_man["postern.1"])
    assert f"postern {VERSION}" in page
    for word in ("EXIT STATUS", "COMPATIBILITY NAMES", "FILES", "--help", "--version",
                 "newaliases", "postern-conf(5)"):
        assert word in page
    for name in listed_commands_from_binary():
        assert re.search(rf"^\s+{re.escape(name)}\b", page, re.M), f"postern(1) lacks {name}"
    master = render(installed_man["postern-master.5"])
    for word in ("COLUMNS", "maxproc", "-o name=value", "DIFFERENCES FROM POSTFIX"):
        assert word in master


def listed_commands_from_binary():
    build = os.environ.get("POSTERN_BUILD") or os.path.join(REPO, "build", "std")
    binary = os.path.join(build, "bin", "postern")
    r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    names = []
    lines = r.stdout.splitlines()
    for line in lines[lines.index("commands:") + 1:]:
        if not line.strip():
            break
        names.append(line.split()[0])
    return names


def conf_entries(page):
    """{parameter: its paragraph, white space collapsed} of postern-conf(5)."""
    section = page.split("\nPARAMETERS\n", 1)[1].split("\nFILES\n", 1)[0]
    entries, name = {}, None
    for line in section.splitlines():
        m = re.match(r"^ {7}([A-Za-z0-9_]+)(?:$| {2,}(.*))", line)
        if m:
            name = m.group(1)
            entries[name] = m.group(2) or ""
        elif name is not None:
            entries[name] += " " + line.strip()
    return {k: " ".join(v.split()) for k, v in entries.items()}


def test_conf_page_lists_every_parameter_with_its_default(postern, installed_man):
    r = postern("conf", "-d", env=env_without_mail_config())
    assert r.returncode == 0, r.stderr
    defaults = {}
    for line in r.stdout.splitlines():
        name, _, value = line.partition(" =")
        defaults[name] = value.strip()
    assert len(defaults) > 100
    page = render(installed_man["postern-conf.5"])
    assert f"postern {VERSION}" in page
    entries = conf_entries(page)
    assert set(entries) == set(defaults)
    for name, value in defaults.items():
        text = entries[name]
        if "Default: computed when postern starts" in text:
            continue  # myhostname, mydomain: this host's names
        if value == "":
            assert "Default: empty." in text, f"{name}: {text}"
        else:
            assert f"Default: {' '.join(value.split())}" in text, f"{name}: {value!r}: {text}"
        assert "Value: " in text, name
    assert "computed when postern starts" in entries["myhostname"]
