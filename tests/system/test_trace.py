"""`postern trace ADDRESS` on the demo database (SQLite), as an
administrator reads it: the printed tree and the exit status for a
mailbox (with its quota and the usage its maildirsize records), an alias
with two targets, the @domain catch-all, an address in an alias domain,
user+ext, an unknown user (exit 1), a backup-MX (relay) domain, a remote
address reached through an alias, and a database that cannot answer
(exit 75, never "unknown")."""

import textwrap

import pytest


@pytest.fixture
def demo(postern, tmp_path):
    """A config dir on a fresh SQLite database holding the demo data."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "main.cf").write_text(textwrap.dedent(f"""\
        database = sqlite:{tmp_path}/postern.db
        myhostname = mail.example.test
        mydestination = localhost
        recipient_delimiter = +
        virtual_mailbox_domains = db:domains
        virtual_alias_domains = db:alias_domains
        virtual_alias_maps = db:aliases
        virtual_mailbox_maps = db:mailboxes
        relay_domains = db:relay_domains
        transport_maps = db:transport
        virtual_mailbox_base = {tmp_path}/vmail
        """))
    for args in (("db", "init"), ("db", "demo"),
                 ("domain", "add", "backup.example", "--backup-mx")):
        res = postern(args[0], "-c", conf, *args[1:])
        assert res.returncode == 0, res.stderr
    return conf


def trace(postern, conf, address, status):
    res = postern("trace", "-c", conf, address)
    assert res.returncode == status, f"exit {res.returncode}: {res.stdout}{res.stderr}"
    return res.stdout


def test_mailbox_with_usage(postern, demo, tmp_path):
    maildir = tmp_path / "vmail" / "example.com" / "alice"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "maildirsize").write_text("104857600S\n1500 1\n2500 2\n")
    assert trace(postern, demo, "alice@example.com", 0) == textwrap.dedent(f"""\
        alice@example.com
          alias: virtual_alias_maps db:aliases key alice@example.com -> alice@example.com (itself: final)
          class: virtual mailbox domain (virtual_mailbox_domains db:domains)
          mailbox: virtual_mailbox_maps db:mailboxes key alice@example.com -> example.com/alice/ (maildir {maildir}/)
          quota: db:quota -> 104857600 bytes; used 4000 bytes, 3 messages (maildirsize)
          transport: virtual (virtual_transport)
        """)


def test_alias_with_two_targets(postern, demo, tmp_path):
    out = trace(postern, demo, "info@example.com", 0)
    assert out == textwrap.dedent(f"""\
        info@example.com
          alias: virtual_alias_maps db:aliases key info@example.com -> alice@example.com, bob@example.com
          alice@example.com
            alias: virtual_alias_maps db:aliases key alice@example.com -> alice@example.com (itself: final)
            class: virtual mailbox domain (virtual_mailbox_domains db:domains)
            mailbox: virtual_mailbox_maps db:mailboxes key alice@example.com -> example.com/alice/ (maildir {tmp_path}/vmail/example.com/alice/)
            quota: db:quota -> 104857600 bytes; used 0 bytes, 0 messages (no maildirsize yet)
            transport: virtual (virtual_transport)
          bob@example.com
            alias: virtual_alias_maps db:aliases key bob@example.com -> bob@example.com (itself: final)
            class: virtual mailbox domain (virtual_mailbox_domains db:domains)
            mailbox: virtual_mailbox_maps db:mailboxes key bob@example.com -> example.com/bob/ (maildir {tmp_path}/vmail/example.com/bob/)
            quota: db:quota -> 52428800 bytes; used 0 bytes, 0 messages (no maildirsize yet)
            transport: virtual (virtual_transport)
        """)


def test_catch_all(postern, demo):
    out = trace(postern, demo, "anything@example.net", 0)
    assert out.splitlines()[:3] == [
        "anything@example.net",
        "  alias: virtual_alias_maps db:aliases key @example.net -> carol@example.net",
        "  carol@example.net",
    ]
    assert "    quota: db:quota -> 0 bytes (no limit); used 0 bytes" in out


def test_alias_domain(postern, demo):
    out = trace(postern, demo, "info@example.org", 0)
    lines = out.splitlines()
    assert lines[:3] == [
        "info@example.org",
        "  alias: virtual_alias_maps db:aliases key info@example.org -> info@example.com",
        "  info@example.com",
    ]
    assert ("    alias: virtual_alias_maps db:aliases key info@example.com -> "
            "alice@example.com, bob@example.com") in lines
    # A user of the target domain that does not exist is unknown here too.
    out = trace(postern, demo, "nobody@example.org", 1)
    assert out == textwrap.dedent("""\
        nobody@example.org
          class: virtual alias domain (virtual_alias_domains db:alias_domains)
          result: undeliverable: User unknown in virtual alias table
        """)


def test_extension(postern, demo, tmp_path):
    out = trace(postern, demo, "alice+lists@example.com", 0)
    assert out == textwrap.dedent(f"""\
        alice+lists@example.com
          alias: virtual_alias_maps db:aliases key alice@example.com -> alice+lists@example.com (extension +lists propagated) (itself: final)
          class: virtual mailbox domain (virtual_mailbox_domains db:domains)
          mailbox: virtual_mailbox_maps db:mailboxes key alice@example.com -> example.com/alice/ (maildir {tmp_path}/vmail/example.com/alice/)
          quota: db:quota -> 104857600 bytes; used 0 bytes, 0 messages (no maildirsize yet)
          transport: virtual (virtual_transport)
        """)


def test_unknown_user(postern, demo):
    assert trace(postern, demo, "nobody@example.com", 1) == textwrap.dedent("""\
        nobody@example.com
          class: virtual mailbox domain (virtual_mailbox_domains db:domains)
          result: undeliverable: User unknown in virtual mailbox table
        """)


def test_relay_and_remote(postern, demo):
    assert trace(postern, demo, "someone@backup.example", 0) == textwrap.dedent("""\
        someone@backup.example
          class: relay domain (relay_domains db:relay_domains)
          transport: relay nexthop backup.example (relay_transport)
        """)
    assert trace(postern, demo, "fwd@example.com", 0) == textwrap.dedent("""\
        fwd@example.com
          alias: virtual_alias_maps db:aliases key fwd@example.com -> someone@remote.example
          someone@remote.example
            class: remote domain (no domain list matches)
            transport: smtp nexthop remote.example (default_transport)
        """)


def test_database_down_is_tempfail(postern, demo, tmp_path):
    (tmp_path / "postern.db").unlink()
    res = postern("trace", "-c", demo, "alice@example.com")
    assert res.returncode == 75, res.stdout + res.stderr
    assert "temporary failure: virtual_alias_maps: db:aliases" in res.stdout
    assert "unknown" not in res.stdout.lower()


def test_usage(postern, demo):
    res = postern("trace", "-c", demo)
    assert res.returncode == 64
    assert "usage: postern trace" in res.stderr


def test_maildir_path_virtual_refuses(postern, demo, tmp_path):
    """A mailboxes row whose maildir virtual refuses (".." climbing out of
    virtual_mailbox_base, or a symlinked component) is reported as virtual
    would treat it: deferred, 4.3.5, with virtual's own words; exit 75."""
    import sqlite3
    with sqlite3.connect(tmp_path / "postern.db") as c:
        c.execute("UPDATE mailboxes SET maildir = '../outside/dotdot/'"
                  " WHERE address = 'alice@example.com'")
    out = trace(postern, demo, "alice@example.com", 75)
    assert out.endswith(
        '  transport: virtual (virtual_transport)\n'
        '  result: deferred: 4.3.5 mail system configuration error: bad maildir path'
        ' "../outside/dotdot/"\n'), out
    assert not (tmp_path / "outside").exists()

    # A symlink planted where a component of the path should be.
    (tmp_path / "vmail" / "example.com").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "vmail" / "example.com" / "linked").symlink_to(tmp_path / "elsewhere")
    with sqlite3.connect(tmp_path / "postern.db") as c:
        c.execute("UPDATE mailboxes SET maildir = 'example.com/linked/'"
                  " WHERE address = 'alice@example.com'")
    out = trace(postern, demo, "alice@example.com", 75)
    assert out.endswith(
        '  result: deferred: 4.3.5 mail system configuration error: maildir'
        ' example.com/linked/: component "linked" is a symlink or not a directory\n'), out
