"""System tests for `postern conf` (postconf) and `postern check` (postfix check).

Runs the built binary on the shipped conf/ and on main.cf/master.cf files
made in temp dirs, and asserts what an administrator sees: the lines printed,
the messages on stderr (with file and line), the exit status, and the bytes
of main.cf after an edit.
"""

import grp
import os
import stat

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(REPO, "conf")

MASTER_MIN = "smtp inet n - n - - smtpd\nrelay unix - - n - - smtp\n"



@pytest.fixture
def tmp_path(owner_tmp_path):
    """Configurations live where mail_owner can read them: `postern check`
    run as root checks that it can (conftest.py)."""
    return owner_tmp_path

def write_conf(tmp_path, main, master=MASTER_MIN):
    """Make a config dir holding main.cf and master.cf; return its path."""
    d = tmp_path / "etc"
    d.mkdir()
    (d / "main.cf").write_text(main)
    (d / "master.cf").write_text(master)
    for name in ("main.cf", "master.cf"):
        os.chmod(d / name, 0o644)
    return str(d)


def test_shipped_config_is_valid(postern):
    r = postern("check", "-c", SHIPPED)
    assert r.returncode == 0, r.stderr
    assert "error" not in r.stderr


def test_conf_n_lists_exactly_what_main_cf_sets(postern):
    r = postern("conf", "-n", "-c", SHIPPED)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines == sorted(lines)
    assert "virtual_mailbox_maps = db:mailboxes" in lines
    assert "myorigin = $mydomain" in lines
    # continuation lines are joined, as postconf shows them
    assert ("smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
            "reject_unauth_destination") in lines
    # parameters left at their defaults are not listed
    assert not any(l.startswith("queue_run_delay") for l in lines)


def test_conf_defaults_and_single_names(postern, tmp_path):
    d = write_conf(tmp_path, "myhostname = mx.example.org\nmessage_size_limit = 1000\n")
    r = postern("conf", "-d", "-c", d, "message_size_limit", "maximal_queue_lifetime",
                "smtpd_relay_restrictions")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "message_size_limit = 10240000",
        "maximal_queue_lifetime = 5d",
        "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
        "defer_unauth_destination",
    ]
    r = postern("conf", "-c", d, "message_size_limit", "mydestination")
    assert r.stdout.splitlines() == [
        "message_size_limit = 1000",
        "mydestination = $myhostname, localhost.$mydomain, localhost",
    ]
    r = postern("conf", "-x", "-h", "-c", d, "mydestination", "mydomain")
    assert r.stdout.splitlines() == ["mx.example.org, localhost.example.org, localhost",
                                     "example.org"]
    r = postern("conf", "-c", d, "no_such_thing")
    assert "no_such_thing: unknown parameter" in r.stderr
    assert r.stdout == ""


def test_conf_all_lists_every_known_parameter_sorted(postern, tmp_path):
    d = write_conf(tmp_path, "myhostname = a.example\n")
    r = postern("conf", "-c", d)
    names = [l.split(" =")[0] for l in r.stdout.splitlines()]
    assert names == sorted(names)
    assert len(names) > 100
    for n in ("virtual_mailbox_maps", "smtpd_recipient_restrictions", "database",
              "inet_interfaces", "relayhost"):
        assert n in names


def test_conf_set_edits_in_place_and_keeps_comments(postern, tmp_path):
    main = ("# top comment\n"
            "myhostname = a.example\n"
            "mynetworks = 127.0.0.0/8,\n"
            "    10.0.0.0/8\n"
            "# keep me\n"
            "relayhost = [old.example]\n")
    d = write_conf(tmp_path, main)
    r = postern("conf", "-c", d, "set", "mynetworks = 127.0.0.0/8", "relayhost=[new.example]:587",
                "message_size_limit = 52428800")
    assert r.returncode == 0, r.stderr
    assert open(os.path.join(d, "main.cf")).read() == (
        "# top comment\n"
        "myhostname = a.example\n"
        "mynetworks = 127.0.0.0/8\n"
        "# keep me\n"
        "relayhost = [new.example]:587\n"
        "message_size_limit = 52428800\n")
    # postconf -e spelling works too
    r = postern("conf", "-c", d, "-e", "relayhost =")
    assert r.returncode == 0, r.stderr
    assert "relayhost =\n" in open(os.path.join(d, "main.cf")).read()
    r = postern("conf", "-c", d, "unset", "relayhost")
    assert r.returncode == 0, r.stderr
    assert "relayhost" not in open(os.path.join(d, "main.cf")).read()
    assert stat.S_IMODE(os.stat(os.path.join(d, "main.cf")).st_mode) == 0o644
    assert not [f for f in os.listdir(d) if ".tmp." in f]


def test_conf_set_refuses_bad_values_and_leaves_file_alone(postern, tmp_path):
    d = write_conf(tmp_path, "myhostname = a.example\n")
    before = open(os.path.join(d, "main.cf")).read()
    r = postern("conf", "-c", d, "set", "message_size_limit = 10MB")
    assert r.returncode == 1
    assert 'bad value for message_size_limit: "10MB": expected a whole number' in r.stderr
    assert "main.cf not changed" in r.stderr
    r = postern("conf", "-c", d, "set", "smtpd_tls_auth_only = maybe")
    assert r.returncode == 1
    assert "expected yes or no" in r.stderr
    r = postern("conf", "-c", d, "set", "no equals sign")
    assert r.returncode == 64
    assert open(os.path.join(d, "main.cf")).read() == before


def test_check_reports_every_problem_with_file_and_line(postern, tmp_path):
    main = ("myhostname = a.example\n"
            "message_size_limit = lots\n"
            "smtpd_banner = ${myhostname\n"
            "tpyo_parameter = 1\n"
            "this line has no equals sign\n"
            "a = $b\n"
            "b = $a\n"
            "relay_destination_concurrency_limit = 2\n")
    master = ("smtp inet n - n - - smtpd\n"
              "  -o smtpd_helo_required=perhaps\n"
              "relay unix - - n - - smtp\n"
              "bogus tcp n - n - - smtpd\n")
    d = write_conf(tmp_path, main, master)
    r = postern("check", "-c", d)
    assert r.returncode == 1
    err = r.stderr
    mc = os.path.join(d, "main.cf")
    ms = os.path.join(d, "master.cf")
    assert f"{mc}, line 5: missing '=' after parameter name \"this\"" in err
    assert f'{mc}, line 2: bad value for message_size_limit: "lots"' in err
    assert f"{mc}, line 3: parameter smtpd_banner: unmatched '{{'" in err
    assert f"{mc}, line 6: parameter a: expansion loop" in err
    assert f"warning: {mc}, line 4: unknown parameter: tpyo_parameter=1" in err
    # a per-transport parameter of a master.cf service is not unknown
    assert "relay_destination_concurrency_limit" not in err
    assert f"{ms}, line 1 (service smtp/inet): bad value for smtpd_helo_required" in err
    assert f"{ms}, line 4" in err and "tcp" in err


def test_check_refuses_a_mailbox_limit_below_the_message_limit(postern, tmp_path):
    """As Postfix's virtual(8) refuses to start: a message smtpd accepts
    must fit in a mailbox file."""
    d = write_conf(tmp_path, "message_size_limit = 2000\nvirtual_mailbox_limit = 1000\n")
    r = postern("check", "-c", d)
    mc = os.path.join(d, "main.cf")
    assert r.returncode == 1
    assert (f"{mc}, line 2: virtual_mailbox_limit (1000) is smaller than message_size_limit "
            f"(2000, {mc}, line 1)") in r.stderr
    for ok in ("message_size_limit = 2000\nvirtual_mailbox_limit = 0\n",
               "message_size_limit = 0\nvirtual_mailbox_limit = 1000\n",
               "message_size_limit = 1000\nvirtual_mailbox_limit = 1000\n"):
        (tmp_path / "etc" / "main.cf").write_text(ok)
        r = postern("check", "-c", d)
        assert r.returncode == 0, (ok, r.stderr)


def test_check_warns_about_secret_files(postern, tmp_path):
    d = write_conf(tmp_path, "myhostname = a.example\n"
                             "virtual_alias_maps = mysql:mysql-aliases.cf\n"
                             "database_password_file = $config_directory/db.pw\n")
    cf = os.path.join(d, "mysql-aliases.cf")
    open(cf, "w").write("hosts = 127.0.0.1\npassword = secret\ndbname = mail\n"
                        "query = SELECT goto FROM alias WHERE address = '%s'\n")
    os.chmod(cf, 0o644)
    pw = os.path.join(d, "db.pw")
    open(pw, "w").write("secret\n")
    os.chmod(pw, 0o604)
    r = postern("check", "-c", d)
    assert r.returncode == 0, r.stderr
    assert f"table file {cf} is readable by other users" in r.stderr
    assert f"password file {pw} is readable by other users" in r.stderr
    os.chmod(cf, 0o640)
    os.chmod(pw, 0o640)
    # Run as root, check also wants mail_owner (postern) to read them.
    if os.getuid() == 0:
        r = postern("check", "-c", d)
        assert r.returncode == 1
        assert (f"{pw}: not readable by mail_owner postern (Permission denied)"
                in r.stderr), r.stderr
        assert f"chgrp postern {pw}; chmod 0640 {pw}" in r.stderr, r.stderr
        for path in (cf, pw):
            os.chown(path, 0, grp.getgrnam("postern").gr_gid)
    r = postern("check", "-c", d)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    os.unlink(cf)
    r = postern("check", "-c", d)
    assert r.returncode == 1
    assert f"table file {cf}: No such file or directory" in r.stderr


def test_check_wants_the_write_password_for_root_once_lookups_have_their_own(postern,
                                                                            tmp_path):
    d = write_conf(tmp_path, "myhostname = a.example\n"
                             "database = mysql://postern@127.0.0.1/mail\n"
                             "database_password_file = $config_directory/write.pw\n")
    write_pw, read_pw = os.path.join(d, "write.pw"), os.path.join(d, "read.pw")
    for path in (write_pw, read_pw):
        open(path, "w").write("secret\n")
        os.chmod(path, 0o640)
        if os.getuid() == 0:  # mail_owner's group, as INSTALL says
            os.chown(path, 0, grp.getgrnam("postern").gr_gid)
    # One account: its password file is shared with mail_owner's group.
    r = postern("check", "-c", d)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    # A lookup account of its own: the write password is root's alone.
    with open(os.path.join(d, "main.cf"), "a") as f:
        f.write("database_readonly = mysql://lookup@127.0.0.1/mail\n"
                "database_readonly_password_file = $config_directory/read.pw\n")
    r = postern("check", "-c", d)
    assert r.returncode == 0, r.stderr
    assert (f"password file {write_pw} of database is readable by its group: with a "
            "separate database_readonly password file it should be readable by root "
            "only") in r.stderr
    os.chmod(write_pw, 0o600)
    r = postern("check", "-c", d)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_check_opens_every_table(postern, tmp_path):
    """A broken table file is found by check, not at the first lookup."""
    d = write_conf(tmp_path, "myhostname = a.example\n"
                             "header_checks = regexp:$config_directory/hc.re\n"
                             "virtual_alias_maps = inline:{ a@x.example=b@y.example,"
                             " c@x.example=d@y.example } db:aliases\n"
                             "virtual_mailbox_maps = db:nosuch\n"
                             "smtpd_client_restrictions = check_client_access"
                             " cidr:$config_directory/clients.cidr\n")
    open(os.path.join(d, "hc.re"), "w").write("/^Subject: a(/ REJECT\n")
    open(os.path.join(d, "clients.cidr"), "w").write("192.0.2.0/33 REJECT\n")
    r = postern("check", "-c", d)
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if ": error: " in l]
    assert any("main.cf, line 2: header_checks: regexp:" in l and "hc.re, line 1:" in l
               and "missing closing parenthesis" in l for l in errors), r.stderr
    assert any("main.cf, line 4: virtual_mailbox_maps: unknown table \"db:nosuch\"" in l
               for l in errors), r.stderr
    # The inline table with a comma inside its braces is one table, not two.
    assert not any("virtual_alias_maps" in l for l in errors), r.stderr
    assert len(errors) == 2, r.stderr
    open(os.path.join(d, "hc.re"), "w").write("/^Subject: a(b)/ REJECT\n")
    with open(os.path.join(d, "main.cf"), "a") as f:
        f.write("virtual_mailbox_maps = db:mailboxes\n")
    r = postern("check", "-c", d)
    assert r.returncode == 0, r.stderr


def test_missing_config_dir_is_a_clear_error(postern, tmp_path):
    r = postern("check", "-c", str(tmp_path / "nowhere"))
    assert r.returncode == 1
    assert f"open {tmp_path}/nowhere/main.cf: No such file or directory" in r.stderr


@pytest.mark.parametrize("args", [["frobnicate"], []])
def test_usage_errors(postern, args):
    r = postern(*args)
    assert r.returncode == 64
    assert "usage: postern" in r.stderr


def test_not_yet_implemented_parameters_are_warned_about(postern, tmp_path):
    """A parameter postern accepts but does not act on yet is a warning with
    file and line when set to anything but its default, in main.cf or as a
    master.cf -o override; at its default (written differently) it is
    not. conf -d and conf NAME still print plain `name = value`."""
    main = ("debug_peer_list = 10.0.0.1\n"
            "smtpd_client_connection_count_limit = 50\n"
            "smtpd_client_recipient_rate_limit = 0\n"
            "notify_classes = resource, software, bounce\n"
            "anvil_rate_time_unit = 1m\n")
    master = ("smtp inet n - n - - smtpd\n"
              "  -o milter_macro_daemon_name=ORIGINATING\n"
              "relay unix - - n - - smtp\n")
    d = write_conf(tmp_path, main, master)
    mc = os.path.join(d, "main.cf")
    ms = os.path.join(d, "master.cf")
    expected = [
        f"warning: {mc}, line 1: debug_peer_list is accepted but not implemented yet",
        f"warning: {mc}, line 4: notify_classes is accepted but not implemented yet",
        f"warning: {ms}, line 1 (service smtp/inet): milter_macro_daemon_name is accepted but "
        "not implemented yet",
    ]
    for args in (("check", "-c", d), ("conf", "-c", d, "-n"),
                 ("conf", "-c", d, "debug_peer_list")):
        r = postern(*args)
        assert r.returncode == 0, (args, r.stderr)
        for line in expected:
            assert line in r.stderr, (args, r.stderr)
        assert r.stderr.count("not implemented yet") == 3, (args, r.stderr)
    r = postern("conf", "-c", d, "debug_peer_list")
    assert r.stdout == "debug_peer_list = 10.0.0.1\n"
    r = postern("conf", "-d", "-c", d)
    assert "\ndebug_peer_list =\n" in r.stdout
    assert "queue_minfree = 0\n" in r.stdout


SEEDS = os.path.join(REPO, "..", "shared", "seeds")


def seed_blocks(marker):
    """The ```bash blocks of the seed guide (../shared/seeds, the Postfix
    administrator's guide postern's users know) that contain marker."""
    out = []
    for name in sorted(os.listdir(SEEDS)):
        if not name.endswith(".txt"):
            continue
        with open(os.path.join(SEEDS, name)) as f:
            text = f.read()
        for block in text.split("```")[1::2]:
            if marker in block:
                out.append(block)
    assert out, f"no seed block with {marker!r} in {SEEDS}"
    return out


def config_lines(block):
    """The main.cf or master.cf lines of a block: drop shell commands and
    comments, keep parameter lines, service lines and their continuations."""
    keep = []
    for line in block.splitlines():
        if line.startswith(("bash", "sudo ", "#")) or not line.strip():
            continue
        keep.append(line)
    return "\n".join(keep) + "\n"


def test_seed_tls_and_sasl_snippets_pass_check(postern, tmp_path):
    """The seed guide's TLS, SASL and submission snippets, unchanged, in a
    main.cf and master.cf: `postern check` accepts them (warnings only:
    the certificate paths do not exist here, the smtp client's TLS
    parameters come with the outbound issue)."""
    main = config_lines(seed_blocks("smtpd_tls_cert_file")[0])
    main += config_lines(seed_blocks("smtpd_sasl_type = cyrus")[0])
    master = MASTER_MIN + config_lines(seed_blocks("submission inet")[0])
    assert "smtpd_tls_security_level = may" in main and "-o smtpd_tls_auth_only=yes" in master
    d = write_conf(tmp_path, main, master)
    r = postern("check", "-c", d)
    assert r.returncode == 0, r.stderr
    assert "error" not in r.stderr, r.stderr
    # What they mean: the values as written, for the daemons to use.
    for name, value in (("smtpd_tls_security_level", "may"), ("smtpd_sasl_type", "cyrus"),
                        ("smtpd_tls_mandatory_protocols", "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"),
                        ("broken_sasl_auth_clients", "yes")):
        r = postern("conf", "-c", d, name)
        assert r.stdout == f"{name} = {value}\n", r.stdout
    r = postern("conf", "-c", d, "-M", "submission/inet")
    assert r.returncode == 0 and "smtpd_tls_security_level=encrypt" in r.stdout, r.stdout


def split_main_master(block):
    """The main.cf and master.cf lines of a seed block (shell commands,
    script bodies and comments dropped)."""
    main, master, in_service = [], [], False
    for line in block.splitlines():
        if not line.strip() or line.startswith(("bash", "sudo ", "#", "/usr/", "    ", ")")):
            in_service = False if not line.strip() else in_service
            continue
        words = line.split()
        if len(words) >= 8 and words[1] in ("inet", "unix", "fifo", "pass"):
            master.append(line)
            in_service = True
        elif line[0] in " \t" and in_service:
            master.append(line)
        elif "=" in line and line[0] not in " \t":
            main.append(line)
    return "\n".join(main) + "\n", "\n".join(master) + "\n"


@pytest.mark.parametrize("marker", [
    "relayhost = [smtp.office365.com]:587\n\n# SMTP AUTH",   # smarthost with AUTH
    "smtp_use_tls = yes",                                   # the second smarthost recipe
    "# For internal email only",                            # local delivery, no relay
    "smtp_tls_session_cache_database",                      # outbound TLS
    "spamassassin unix",                                    # pipe content filter
    "smtp-amavis unix",                                     # SMTP content filter
    "content_filter = filter:dummy",                        # a script as filter
])
def test_seed_outbound_snippets_pass_check(postern, tmp_path, marker):
    """The seed guide's relayhost, transport, content-filter and local
    snippets, unchanged, pass `postern check`: no error, and no
    "not implemented yet" for what they set (the mail-leaving parameters
    all work now)."""
    main, master = split_main_master(seed_blocks(marker)[0])
    # Tables named in the snippet live in the test's directory, built as
    # the guide says (postmap -> postern map build).
    main = main.replace("/etc/postfix/", f"{tmp_path}/")
    if "sasl_passwd" in main:
        with open(os.path.join(str(tmp_path), "sasl_passwd"), "w") as f:
            f.write("[smtp.office365.com]:587 username@example.com:password\n")
        r = postern("map", "build", f"hash:{tmp_path}/sasl_passwd")
        assert r.returncode == 0, r.stderr
    if "smtp      inet" in master:
        master = master + "relay unix - - n - - smtp\n"
    else:
        master = MASTER_MIN + master
    d = write_conf(tmp_path, main, master)
    r = postern("check", "-c", d)
    assert r.returncode == 0, (main, master, r.stderr)
    assert "error" not in r.stderr, r.stderr
    assert "not implemented yet" not in r.stderr, (main, master, r.stderr)
    assert "unknown parameter" not in r.stderr, (main, master, r.stderr)


def test_check_refuses_unknown_receive_override_options(postern, tmp_path):
    """smtpd and pickup would not start on an unknown option: `postern
    check` (and so `postern start` and reload) says so first, naming the
    file and service."""
    main = "receive_override_options = no_address_mappings, bogus\n"
    master = MASTER_MIN + ("127.0.0.1:10025 inet n - n - - smtpd\n"
                           "  -o receive_override_options=no_milters,nope\n")
    d = write_conf(tmp_path, main, master)
    r = postern("check", "-c", d)
    assert r.returncode != 0
    assert 'main.cf: receive_override_options: unknown option "bogus"' in r.stderr, r.stderr
    assert ("service 127.0.0.1:10025/inet: receive_override_options: unknown option \"nope\""
            in r.stderr), r.stderr


def test_check_mailbox_size_limit_against_message_size_limit(postern, tmp_path):
    """With the local agent in master.cf, a mailbox_size_limit below
    message_size_limit is an error (local, like Postfix's, would refuse to
    start); 0 (no limit, conf/main.cf's choice) is fine."""
    master = MASTER_MIN + "local unix - n n - - local\n"
    d = write_conf(tmp_path, "message_size_limit = 52428800\n", master)
    r = postern("check", "-c", d)
    assert r.returncode != 0
    assert ("mailbox_size_limit (51200000) is smaller than message_size_limit (52428800"
            in r.stderr), r.stderr
    with open(os.path.join(d, "main.cf"), "w") as f:
        f.write("message_size_limit = 52428800\nmailbox_size_limit = 0\n"
                "virtual_mailbox_limit = $message_size_limit\n")
    r = postern("check", "-c", d)
    assert r.returncode == 0 and "mailbox_size_limit" not in r.stderr, r.stderr
