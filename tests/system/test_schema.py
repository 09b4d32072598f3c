"""postern's SQL schema is one schema in three dialects.

Loads sql/<dialect>/migrations/*.sql and sql/<dialect>/demo.sql into a
fresh SQLite file, a fresh MariaDB database and a fresh PostgreSQL database
(the `mariadb` and `postgres` servers of conftest.py), splitting the files
the way postern's migration runner does (sql/README.md), then checks:

  * the three catalogs, normalized to one logical form (tables, columns with
    type class / length / nullability / default, primary keys, UNIQUE
    constraints, foreign keys with their ON DELETE action, indexes), are
    equal, and match the table and column names the design names;
  * applying the migrations again changes nothing and leaves one
    schema_version row per migration;
  * demo.sql loads twice and the lookups postern and Dovecot make return the
    same answers everywhere; its passwords are "demo";
  * upper-case names and addresses are refused by each server;
  * deleting a domain deletes its mailboxes, aliases, alias domains and
    domain admin grants.
"""

import difflib
import glob
import os
import pprint
import re
import sqlite3
import subprocess
import uuid

import psycopg2
import psycopg2.errors
import pymysql
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SQL_DIR = os.path.join(REPO, "sql")
DIALECTS = ("sqlite", "mysql", "pgsql")

# The tables and columns the design names (DESIGN.md section 6), in order.
EXPECTED_COLUMNS = {
    "schema_version": ["version", "applied_at"],
    "domains": ["id", "name", "description", "active", "max_mailboxes", "max_aliases",
                "default_quota_bytes", "total_quota_bytes", "transport", "backup_mx",
                "uid", "gid", "created_at", "modified_at"],
    "mailboxes": ["id", "domain_id", "local_part", "address", "password", "name",
                  "quota_bytes", "quota_messages", "active", "maildir",
                  "created_at", "modified_at"],
    "aliases": ["id", "domain_id", "address", "active", "created_at", "modified_at"],
    "alias_targets": ["id", "alias_id", "target"],
    "alias_domains": ["id", "name", "target_domain_id", "active", "created_at"],
    "quota_usage": ["username", "bytes", "messages"],
    "admins": ["id", "username", "password", "superadmin", "active", "created_at",
               "last_login"],
    "domain_admins": ["admin_id", "domain_id"],
    "api_tokens": ["id", "admin_id", "token_hash", "description", "created_at",
                   "expires_at", "last_used_at"],
    "admin_log": ["id", "at", "admin", "domain", "action", "data"],
}

# Columns the mail daemons look keys up by: each must lead an index.
LOOKUP_COLUMNS = [("domains", "name"), ("mailboxes", "address"),
                  ("aliases", "address"), ("alias_domains", "name"),
                  ("quota_usage", "username")]


# --- the migration runner's statement rule --------------------------------

def split_statements(text, path="<sql>"):
    """Split SQL text the way postern's runner does (sql/README.md).

    A statement ends at a ';' that is the last non-blank character of a
    line.  Fragments holding only blank lines and '--' comments are skipped.
    Anything but comments after the last ';' is an error in the file.
    """
    parts = re.split(r";[ \t]*(?:\r?\n|\Z)", text)
    statements = []
    for i, part in enumerate(parts):
        code = [ln for ln in part.splitlines()
                if ln.strip() and not ln.strip().startswith("--")]
        if not code:
            continue
        assert i < len(parts) - 1, f"{path}: statement without a final ';': {part.strip()!r}"
        statements.append(part.strip())
    return statements


def migration_files(dialect):
    pattern = os.path.join(SQL_DIR, dialect, "migrations", "[0-9][0-9][0-9][0-9]_*.sql")
    return sorted(glob.glob(pattern))


def migration_numbers(dialect):
    return [int(os.path.basename(p)[:4]) for p in migration_files(dialect)]


# --- one fresh database per dialect ---------------------------------------

class Db:
    """A fresh database of one dialect: run files and queries, read its catalog.

    query() takes '?' placeholders in every dialect and returns a list of
    tuples.  check_error is the exception class a CHECK violation raises.
    """

    dialect = None
    check_error = None

    def run_file(self, path):
        with open(path, encoding="utf-8") as f:
            statements = split_statements(f.read(), path)
        assert statements, f"{path}: no statements"
        for stmt in statements:
            try:
                self.execute(stmt)
            except Exception as exc:
                raise AssertionError(f"{path}: statement failed: {exc}\n{stmt}") from exc

    def migrate(self):
        for path in migration_files(self.dialect):
            self.run_file(path)

    def load_demo(self):
        self.run_file(os.path.join(SQL_DIR, self.dialect, "demo.sql"))

    def query(self, sql, args=None):
        """Run one statement; '?' marks parameters only when args is given."""
        cur = self.conn.cursor()
        try:
            if args is None:
                cur.execute(sql)  # as written: no placeholders, '%' is literal
            else:
                cur.execute(self.placeholders(sql), tuple(args))
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        finally:
            cur.close()

    def execute(self, sql, args=None):
        self.query(sql, args)

    @staticmethod
    def placeholders(sql):
        return sql.replace("?", "%s")


class SqliteDb(Db):
    dialect = "sqlite"
    check_error = sqlite3.IntegrityError

    def __init__(self, path):
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=10)
        # As every postern connection does: enforce REFERENCES / CASCADE.
        self.conn.execute("PRAGMA foreign_keys = ON")

    @staticmethod
    def placeholders(sql):
        return sql

    def close(self):
        self.conn.close()

    def catalog(self):
        tables = [r[0] for r in self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%'")]
        out = {}
        for t in tables:
            create = self.query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                (t,))[0][0]
            autoinc = set(re.findall(r"(\w+)\s+INTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT",
                                     create, re.I))
            # A boolean is an INTEGER column restricted by CHECK (col IN (0, 1)).
            bools = set(re.findall(r"CHECK\s*\(\s*(\w+)\s+IN\s*\(\s*0\s*,\s*1\s*\)\s*\)",
                                   create, re.I))
            info = self.query(f'PRAGMA table_info("{t}")')
            pk = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
            cols = {}
            for cid, name, decl, notnull, dflt, pkpos in info:
                decl = decl.upper()
                # A single INTEGER PRIMARY KEY is the rowid: never NULL, and
                # 64-bit, which is what BIGINT/BIGSERIAL ids are elsewhere.
                rowid = pk == (name,) and decl == "INTEGER"
                auto = name in autoinc
                if auto:
                    tclass, length = "bigint", None
                elif decl == "INTEGER" and name in bools:
                    tclass, length = "bool", None
                else:
                    tclass, length = sqlite_type(decl)
                cols[name] = column(cid, tclass, length, not (notnull or rowid),
                                    None if auto else norm_default(dflt, tclass), auto)
            uniques, indexes = [], []
            for _seq, iname, unique, origin, _partial in self.query(f'PRAGMA index_list("{t}")'):
                if origin == "pk":
                    continue
                icols = tuple(r[2] for r in sorted(self.query(f'PRAGMA index_info("{iname}")')))
                if unique:
                    uniques.append(icols)
                else:
                    indexes.append((iname, icols))
            fks = {}
            for fid, seq, rtable, frm, to, _upd, on_delete, _match in self.query(
                    f'PRAGMA foreign_key_list("{t}")'):
                fks.setdefault(fid, []).append((seq, frm, to, rtable, on_delete))
            fklist = []
            for rows in fks.values():
                rows.sort()
                fklist.append((tuple(r[1] for r in rows), rows[0][3],
                               tuple(r[2] for r in rows), norm_action(rows[0][4])))
            out[t] = table(cols, pk, uniques, fklist, indexes)
        return out


class MariaDb(Db):
    dialect = "mysql"
    check_error = pymysql.err.OperationalError  # ER_CONSTRAINT_FAILED, 4025

    def __init__(self, server, name):
        self.server, self.name = server, name
        server.create_database(name)
        self.conn = server.connect(database=name)

    def close(self):
        self.conn.close()
        self.server.admin_sql(f"DROP DATABASE IF EXISTS `{self.name}`")

    def catalog(self):
        out = {}
        rows = self.query(
            "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, COLUMN_TYPE, "
            "CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE, COLUMN_DEFAULT, EXTRA "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?", (self.name,))
        cols = {}
        for t, name, pos, dtype, ctype, maxlen, nullable, dflt, extra in rows:
            tclass, length = mysql_type(dtype.lower(), ctype.lower(), maxlen)
            auto = "auto_increment" in extra.lower()
            # MariaDB reports "no default" on a nullable column as 'NULL'.
            if dflt == "NULL":
                dflt = None
            cols.setdefault(t, {})[name] = column(pos - 1, tclass, length, nullable == "YES",
                                                  norm_default(dflt, tclass), auto)
        stats = {}
        for t, iname, non_unique, seq, col in self.query(
                "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME "
                "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?", (self.name,)):
            stats.setdefault(t, {}).setdefault(iname, [int(non_unique) == 0, []])[1].append(
                (seq, col))
        fks = {}
        for t, cname, col, rtable, rcol, pos, on_delete in self.query(
                "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, "
                "k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, k.ORDINAL_POSITION, "
                "r.DELETE_RULE "
                "FROM information_schema.KEY_COLUMN_USAGE k "
                "JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
                "  ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA "
                " AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME "
                "WHERE k.TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL",
                (self.name,)):
            fks.setdefault(t, {}).setdefault(cname, []).append((pos, col, rtable, rcol, on_delete))
        for t, tcols in cols.items():
            pk, uniques, indexes = (), [], []
            for iname, (unique, icols) in stats.get(t, {}).items():
                icols = tuple(c for _s, c in sorted(icols))
                if iname == "PRIMARY":
                    pk = icols
                elif unique:
                    uniques.append(icols)
                else:
                    indexes.append((iname, icols))
            fklist = []
            for frows in fks.get(t, {}).values():
                frows.sort()
                fklist.append((tuple(r[1] for r in frows), frows[0][2],
                               tuple(r[3] for r in frows), norm_action(frows[0][4])))
            out[t] = table(tcols, pk, uniques, fklist, indexes)
        return out


class PgDb(Db):
    dialect = "pgsql"
    check_error = psycopg2.errors.CheckViolation

    def __init__(self, server, name):
        self.server, self.name = server, name
        server.create_database(name)
        self.conn = server.connect(dbname=name)

    def close(self):
        self.conn.close()
        self.server.admin_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def catalog(self):
        out = {}
        cols = {}
        for t, name, pos, dtype, maxlen, nullable, dflt in self.query(
                "SELECT table_name, column_name, ordinal_position, data_type, "
                "character_maximum_length, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema = 'public'"):
            tclass, length = pg_type(dtype, maxlen)
            auto = bool(dflt and dflt.startswith("nextval("))
            cols.setdefault(t, {})[name] = column(pos - 1, tclass, length, nullable == "YES",
                                                  None if auto else norm_default(dflt, tclass),
                                                  auto)
        idx = {}
        for t, iname, unique, primary, icols in self.query(
                "SELECT t.relname, i.relname, x.indisunique, x.indisprimary, "
                "       ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(n, o) "
                "             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n "
                "             ORDER BY k.o) "
                "FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid "
                "JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_namespace s ON s.oid = t.relnamespace WHERE s.nspname = 'public'"):
            idx.setdefault(t, []).append((iname, unique, primary, tuple(icols)))
        actions = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL",
                   "d": "SET DEFAULT"}
        fks = {}
        for t, rtable, fcols, rcols, deltype in self.query(
                "SELECT t.relname, r.relname, "
                "       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o) "
                "             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n "
                "             ORDER BY k.o), "
                "       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o) "
                "             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n "
                "             ORDER BY k.o), "
                "       c.confdeltype "
                "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
                "JOIN pg_class r ON r.oid = c.confrelid "
                "JOIN pg_namespace s ON s.oid = t.relnamespace "
                "WHERE c.contype = 'f' AND s.nspname = 'public'"):
            fks.setdefault(t, []).append((tuple(fcols), rtable, tuple(rcols),
                                          norm_action(actions[deltype])))
        for t, tcols in cols.items():
            pk, uniques, indexes = (), [], []
            for iname, unique, primary, icols in idx.get(t, []):
                if primary:
                    pk = icols
                elif unique:
                    uniques.append(icols)
                else:
                    indexes.append((iname, icols))
            out[t] = table(tcols, pk, uniques, fks.get(t, []), indexes)
        return out


# --- normalization to one logical form ------------------------------------

def column(pos, tclass, length, nullable, default, auto):
    return {"pos": pos, "type": tclass, "length": length, "nullable": nullable,
            "default": default, "autoincrement": auto}


def table(cols, pk, uniques, fks, indexes):
    return {
        "columns": cols,
        "primary_key": tuple(pk),
        "unique": sorted(uniques),
        "foreign_keys": sorted(fks),
        # Non-unique indexes, by name: the name is the same in every dialect.
        "indexes": sorted(indexes),
    }


def sqlite_type(decl):
    m = re.fullmatch(r"(?:VARCHAR|CHARACTER VARYING)\((\d+)\)", decl)
    if m:
        return "text", int(m.group(1))
    return {"INTEGER": ("integer", None), "INT": ("integer", None),
            "BIGINT": ("bigint", None), "TEXT": ("text", None),
            "BOOLEAN": ("bool", None), "DATETIME": ("timestamp", None),
            "TIMESTAMP": ("timestamp", None)}.get(decl, ("unknown:" + decl, None))


def mysql_type(dtype, ctype, maxlen):
    if dtype == "tinyint" and ctype.startswith("tinyint(1)"):
        return "bool", None
    if dtype == "varchar":
        return "text", int(maxlen)
    return {"int": ("integer", None), "bigint": ("bigint", None),
            "text": ("text", None), "datetime": ("timestamp", None),
            "timestamp": ("timestamp", None)}.get(dtype, ("unknown:" + ctype, None))


def pg_type(dtype, maxlen):
    if dtype == "character varying":
        return "text", maxlen
    return {"integer": ("integer", None), "bigint": ("bigint", None),
            "text": ("text", None), "boolean": ("bool", None),
            "timestamp with time zone": ("timestamp", None),
            "timestamp without time zone": ("timestamp", None)}.get(
                dtype, ("unknown:" + dtype, None))


def norm_default(value, tclass):
    """A column default as a Python value, whatever the dialect printed."""
    if value is None:
        return None
    v = re.sub(r"::[a-z ]+$", "", str(value).strip())  # PostgreSQL's '0'::bigint
    if v.startswith("(") and v.endswith(")"):
        v = v[1:-1].strip()
    if tclass == "timestamp" and v.lower() in ("current_timestamp", "current_timestamp()",
                                               "now()"):
        return "CURRENT_TIMESTAMP"
    if tclass == "bool":
        return {"1": True, "true": True, "0": False, "false": False}.get(v.lower(),
                                                                         "bad bool " + v)
    if tclass in ("integer", "bigint") and re.fullmatch(r"-?\d+", v):
        return int(v)
    if len(v) >= 2 and v[0] == v[-1] == "'":
        return v[1:-1].replace("''", "'")
    return "unparsed " + v


def norm_action(action):
    # InnoDB reports an unspecified action as RESTRICT, which for it is the
    # same as NO ACTION (checked at once; there are no deferred checks).
    action = action.upper()
    return "NO ACTION" if action == "RESTRICT" else action


def diff(a_name, a, b_name, b):
    return "\n".join(difflib.unified_diff(
        pprint.pformat(a, width=100).splitlines(), pprint.pformat(b, width=100).splitlines(),
        a_name, b_name, lineterm=""))


def assert_same(results, what):
    """results: {dialect: value}; all equal, or fail with a unified diff."""
    ref = results["sqlite"]
    for dialect, value in results.items():
        assert value == ref, (f"{what} differs between sqlite and {dialect}:\n"
                              + diff("sqlite", ref, dialect, value))


# --- fixtures -------------------------------------------------------------

@pytest.fixture
def dbs(tmp_path, mariadb, postgres):
    """{dialect: Db}: an empty database in each dialect, dropped afterwards."""
    name = "schema_" + uuid.uuid4().hex[:12]
    made = {}
    try:
        made["sqlite"] = SqliteDb(str(tmp_path / (name + ".db")))
        made["mysql"] = MariaDb(mariadb, name)
        made["pgsql"] = PgDb(postgres, name)
        yield made
    finally:
        for db in made.values():
            db.close()


@pytest.fixture
def demo(dbs):
    for db in dbs.values():
        db.migrate()
        db.load_demo()
    return dbs


# --- tests ----------------------------------------------------------------

def test_every_dialect_has_the_same_migrations_and_a_demo():
    names = {d: [os.path.basename(p) for p in migration_files(d)] for d in DIALECTS}
    assert names["sqlite"], "no migrations in sql/sqlite/migrations"
    assert_same(names, "migration file names")
    nums = migration_numbers("sqlite")
    assert nums == list(range(1, len(nums) + 1)), f"migrations not numbered 1..n: {nums}"
    for d in DIALECTS:
        assert os.path.isfile(os.path.join(SQL_DIR, d, "demo.sql"))
        assert os.path.isfile(os.path.join(SQL_DIR, d, "migrations", "0001_initial.sql"))


def test_three_dialects_create_the_same_schema(dbs):
    catalogs = {}
    for dialect, db in dbs.items():
        db.migrate()
        catalogs[dialect] = db.catalog()

    assert_same(catalogs, "normalized schema")

    # The three are equal, so the facts the design names are checked on one:
    # a drift made in all three files fails here.
    cat = catalogs["sqlite"]
    assert sorted(cat) == sorted(EXPECTED_COLUMNS)
    for t, cols in EXPECTED_COLUMNS.items():
        got = sorted(cat[t]["columns"], key=lambda c: cat[t]["columns"][c]["pos"])
        assert got == cols, f"columns of {t}"

    c = {t: cat[t]["columns"] for t in cat}
    assert c["domains"]["id"]["type"] == "bigint" and c["domains"]["id"]["autoincrement"]
    assert c["mailboxes"]["domain_id"]["type"] == "bigint"
    assert (c["mailboxes"]["address"]["type"], c["mailboxes"]["address"]["length"]) == \
        ("text", 255)
    assert c["mailboxes"]["quota_bytes"]["type"] == "bigint"
    assert c["mailboxes"]["quota_bytes"]["nullable"] is True
    assert c["mailboxes"]["quota_messages"]["type"] == "integer"
    assert c["mailboxes"]["active"] == column(c["mailboxes"]["active"]["pos"], "bool",
                                              None, False, True, False)
    assert c["domains"]["backup_mx"]["default"] is False
    assert c["domains"]["default_quota_bytes"]["default"] == 0
    assert c["domains"]["transport"]["nullable"] is True
    assert c["domains"]["uid"]["type"] == "integer" and c["domains"]["uid"]["nullable"]
    assert c["domains"]["created_at"]["type"] == "timestamp"
    assert c["domains"]["created_at"]["default"] == "CURRENT_TIMESTAMP"
    assert c["quota_usage"]["bytes"] == column(1, "bigint", None, False, 0, False)
    assert c["quota_usage"]["messages"] == column(2, "integer", None, False, 0, False)
    assert c["schema_version"]["version"]["type"] == "integer"
    assert c["admins"]["last_login"]["nullable"] is True

    assert cat["quota_usage"]["primary_key"] == ("username",)
    assert cat["domain_admins"]["primary_key"] == ("admin_id", "domain_id")
    assert ("domain_id", "local_part") in cat["mailboxes"]["unique"]
    assert ("address",) in cat["mailboxes"]["unique"]
    assert ("alias_id", "target") in cat["alias_targets"]["unique"]
    assert cat["mailboxes"]["foreign_keys"] == [
        (("domain_id",), "domains", ("id",), "CASCADE")]

    # Every foreign key column and every lookup column leads an index.
    for t, info in cat.items():
        leading = {cols[0] for cols in info["unique"]}
        leading |= {cols[0] for _n, cols in info["indexes"]}
        if info["primary_key"]:
            leading.add(info["primary_key"][0])
        for fcols, rtable, _rcols, action in info["foreign_keys"]:
            assert fcols[0] in leading, f"{t}.{fcols[0]} has no index"
            assert action == "CASCADE", f"{t}.{fcols[0]} -> {rtable}"
        for lt, lc in LOOKUP_COLUMNS:
            if lt == t:
                assert lc in leading, f"lookup column {t}.{lc} has no index"

    # MariaDB only: InnoDB (foreign keys work) and a binary collation on
    # every table and text column, whatever the server default is (the
    # test server's is utf8mb4_unicode_ci): exact comparisons, as in the
    # other dialects, and lower-case CHECKs that can fail.
    my = dbs["mysql"]
    tables = my.query("SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
                      "WHERE TABLE_SCHEMA = ?", (my.name,))
    assert sorted(tables) == sorted((t, "InnoDB", "utf8mb4_bin") for t in EXPECTED_COLUMNS)
    colls = my.query("SELECT DISTINCT COLLATION_NAME FROM information_schema.COLUMNS "
                     "WHERE TABLE_SCHEMA = ? AND COLLATION_NAME IS NOT NULL", (my.name,))
    assert colls == [("utf8mb4_bin",)]


# Edits of one dialect's migration that the comparison must notice: a type,
# a nullability, a default, an ON DELETE action, an index, a UNIQUE, a length.
DRIFTS = {
    "type": ("default_quota_bytes  BIGINT", "default_quota_bytes  INTEGER"),
    "nullability": ("    transport            VARCHAR(255),",
                    "    transport VARCHAR(255) NOT NULL DEFAULT '',"),
    "default": ("backup_mx            INTEGER NOT NULL DEFAULT 0",
                "backup_mx INTEGER NOT NULL DEFAULT 1"),
    "on-delete": ("REFERENCES aliases (id) ON DELETE CASCADE", "REFERENCES aliases (id)"),
    "index": ("CREATE INDEX IF NOT EXISTS api_tokens_admin_id_idx ON api_tokens (admin_id);\n",
              ""),
    "unique": ("    CONSTRAINT aliases_address_key UNIQUE (address),\n", ""),
    "length": ("    maildir         VARCHAR(255) NOT NULL,", "    maildir VARCHAR(200) NOT NULL,"),
}


@pytest.mark.parametrize("old,new", DRIFTS.values(), ids=DRIFTS.keys())
def test_comparison_catches_a_drift(tmp_path, postgres, old, new):
    """A schema that drifted in one dialect does not compare equal."""
    name = "drift_" + uuid.uuid4().hex[:12]
    pg = PgDb(postgres, name)
    clean = SqliteDb(str(tmp_path / "clean.db"))
    drifted = SqliteDb(str(tmp_path / "drift.db"))
    try:
        pg.migrate()
        clean.migrate()
        assert clean.catalog() == pg.catalog()
        with open(migration_files("sqlite")[0], encoding="utf-8") as f:
            text = f.read()
        assert text.count(old) == 1, f"drift pattern not found once: {old!r}"
        for stmt in split_statements(text.replace(old, new)):
            drifted.execute(stmt)
        assert drifted.catalog() != pg.catalog()
    finally:
        drifted.close()
        clean.close()
        pg.close()


def test_migrations_run_twice_change_nothing(dbs):
    before, after, versions = {}, {}, {}
    for dialect, db in dbs.items():
        db.migrate()
        before[dialect] = db.catalog()
        db.migrate()
        after[dialect] = db.catalog()
        versions[dialect] = sorted(v for (v,) in db.query("SELECT version FROM schema_version"))
        assert after[dialect] == before[dialect], \
            f"{dialect}: second run changed the schema:\n" + \
            diff("first", before[dialect], "second", after[dialect])
        assert versions[dialect] == migration_numbers(dialect)
        assert versions[dialect][0] == 1
        (count,) = db.query("SELECT count(*) FROM schema_version WHERE applied_at IS NOT NULL")[0]
        assert count == len(versions[dialect])


# The demo, as the daemons and the admin see it.
DEMO_MAILBOXES = [
    # address, maildir, quota_bytes, effective quota (NULL -> domain default)
    ("alice@example.com", "example.com/alice/", 104857600, 104857600),
    ("bob@example.com", "example.com/bob/", None, 52428800),
    ("carol@example.net", "example.net/carol/", 0, 0),
]
DEMO_ALIASES = {
    "@example.net": ["carol@example.net"],
    "fwd@example.com": ["someone@remote.example"],
    "info@example.com": ["alice@example.com", "bob@example.com"],
    "postmaster@example.com": ["alice@example.com"],
}
DEMO_COUNTS = {"domains": 2, "mailboxes": 3, "aliases": 4, "alias_targets": 5,
               "alias_domains": 1, "admins": 2, "domain_admins": 1, "api_tokens": 0,
               "quota_usage": 0}


def demo_facts(db):
    facts = {}
    facts["mailboxes"] = sorted(db.query(
        "SELECT m.address, m.maildir, m.quota_bytes, "
        "       COALESCE(m.quota_bytes, d.default_quota_bytes) "
        "FROM mailboxes m JOIN domains d ON d.id = m.domain_id"))
    aliases = {}
    for addr, target in db.query(
            "SELECT a.address, t.target FROM aliases a JOIN alias_targets t ON t.alias_id = a.id"):
        aliases.setdefault(addr, []).append(target)
    facts["aliases"] = {a: sorted(t) for a, t in aliases.items()}
    facts["alias_domains"] = sorted(db.query(
        "SELECT ad.name, d.name FROM alias_domains ad "
        "JOIN domains d ON d.id = ad.target_domain_id"))
    facts["admins"] = sorted((u, bool(s), bool(a)) for u, s, a in db.query(
        "SELECT username, superadmin, active FROM admins"))
    facts["domain_admins"] = sorted(db.query(
        "SELECT a.username, d.name FROM domain_admins da "
        "JOIN admins a ON a.id = da.admin_id JOIN domains d ON d.id = da.domain_id"))
    facts["counts"] = {t: db.query(f"SELECT count(*) FROM {t}")[0][0] for t in DEMO_COUNTS}
    # Postfix-style lookups, written once for all dialects: active = '1' is
    # accepted by an INTEGER, a TINYINT(1) and a BOOLEAN column alike.
    facts["virtual_mailbox_domains"] = {k: db.query(
        "SELECT name FROM domains WHERE name = ? AND active = '1' AND backup_mx = '0'", (k,))
        for k in ("example.com", "example.net", "example.org", "Example.com")}
    facts["virtual_mailbox_maps"] = {k: db.query(
        "SELECT maildir FROM mailboxes WHERE address = ? AND active = '1'", (k,))
        for k in ("alice@example.com", "carol@example.net", "nobody@example.com",
                  "Alice@example.com")}
    facts["virtual_alias_maps"] = {k: sorted(db.query(
        "SELECT t.target FROM aliases a JOIN alias_targets t ON t.alias_id = a.id "
        "WHERE a.address = ? AND a.active = '1'", (k,)))
        for k in ("info@example.com", "@example.net", "@example.com", "INFO@example.com")}
    facts["passwords"] = sorted(db.query(
        "SELECT address, password FROM mailboxes")) + sorted(db.query(
            "SELECT username, password FROM admins"))
    return facts


def test_demo_data_loads_twice_and_reads_the_same_everywhere(demo):
    facts = {}
    for dialect, db in demo.items():
        db.load_demo()  # the second time: must change nothing
        facts[dialect] = demo_facts(db)
    assert_same(facts, "demo data")

    f = facts["sqlite"]
    assert f["mailboxes"] == DEMO_MAILBOXES
    assert f["aliases"] == DEMO_ALIASES
    assert f["alias_domains"] == [("example.org", "example.com")]
    assert f["admins"] == [("admin", True, True), ("netadmin", False, True)]
    assert f["domain_admins"] == [("netadmin", "example.net")]
    assert f["counts"] == DEMO_COUNTS
    assert f["virtual_mailbox_domains"] == {
        "example.com": [("example.com",)], "example.net": [("example.net",)],
        "example.org": [], "Example.com": []}
    assert f["virtual_mailbox_maps"] == {
        "alice@example.com": [("example.com/alice/",)],
        "carol@example.net": [("example.net/carol/",)],
        "nobody@example.com": [], "Alice@example.com": []}
    assert f["virtual_alias_maps"] == {
        "info@example.com": [("alice@example.com",), ("bob@example.com",)],
        "@example.net": [("carol@example.net",)],
        "@example.com": [], "INFO@example.com": []}


def test_demo_passwords_are_demo_for_dovecot(demo, tmp_path):
    """Every demo hash is a Dovecot SHA512-CRYPT hash of the password "demo"."""
    conf = tmp_path / "dovecot.conf"
    conf.write_text("")  # doveadm pw needs no settings; keep /etc/dovecot out
    rows = demo_facts(demo["sqlite"])["passwords"]
    assert [r[0] for r in rows] == ["alice@example.com", "bob@example.com",
                                    "carol@example.net", "admin", "netadmin"]
    for who, hashed in rows:
        assert hashed.startswith("{SHA512-CRYPT}$6$"), who
        for password, ok in (("demo", True), ("wrong", False)):
            r = subprocess.run(["doveadm", "-c", str(conf), "pw", "-t", hashed, "-p", password],
                               capture_output=True, text=True, timeout=30)
            assert (r.returncode == 0) == ok, f"{who} {password}: {r.stdout}{r.stderr}"
            if ok:
                assert "(verified)" in r.stdout


# (table, constraint, upper-case insert, the same insert in lower case)
UPPER_CASE_INSERTS = [
    ("domains", "domains_name_lower",
     "INSERT INTO domains (name) VALUES ('Example.info')",
     "INSERT INTO domains (name) VALUES ('example.info')"),
    ("mailboxes", "mailboxes_address_lower",
     "INSERT INTO mailboxes (domain_id, local_part, address, password, maildir) "
     "SELECT id, 'dave', 'Dave@example.com', 'x', 'example.com/dave/' "
     "FROM domains WHERE name = 'example.com'",
     "INSERT INTO mailboxes (domain_id, local_part, address, password, maildir) "
     "SELECT id, 'dave', 'dave@example.com', 'x', 'example.com/dave/' "
     "FROM domains WHERE name = 'example.com'"),
    ("mailboxes", "mailboxes_local_part_lower",
     "INSERT INTO mailboxes (domain_id, local_part, address, password, maildir) "
     "SELECT id, 'Erin', 'erin@example.com', 'x', 'example.com/erin/' "
     "FROM domains WHERE name = 'example.com'",
     "INSERT INTO mailboxes (domain_id, local_part, address, password, maildir) "
     "SELECT id, 'erin', 'erin@example.com', 'x', 'example.com/erin/' "
     "FROM domains WHERE name = 'example.com'"),
    ("aliases", "aliases_address_lower",
     "INSERT INTO aliases (domain_id, address) "
     "SELECT id, 'Sales@example.com' FROM domains WHERE name = 'example.com'",
     "INSERT INTO aliases (domain_id, address) "
     "SELECT id, 'sales@example.com' FROM domains WHERE name = 'example.com'"),
    ("alias_domains", "alias_domains_name_lower",
     "INSERT INTO alias_domains (name, target_domain_id) "
     "SELECT 'Example.biz', id FROM domains WHERE name = 'example.com'",
     "INSERT INTO alias_domains (name, target_domain_id) "
     "SELECT 'example.biz', id FROM domains WHERE name = 'example.com'"),
]


@pytest.mark.parametrize("tbl,constraint,upper,lower", UPPER_CASE_INSERTS,
                         ids=[c for _t, c, _u, _l in UPPER_CASE_INSERTS])
def test_upper_case_is_refused_by_every_server(demo, tbl, constraint, upper, lower):
    for dialect, db in demo.items():
        (before,) = db.query(f"SELECT count(*) FROM {tbl}")[0]
        with pytest.raises(db.check_error) as err:
            db.execute(upper)
        if dialect == "mysql":
            assert err.value.args[0] == 4025, err.value  # ER_CONSTRAINT_FAILED
        assert constraint in str(err.value) or \
            getattr(getattr(err.value, "diag", None), "constraint_name", None) == constraint, \
            f"{dialect}: {err.value}"
        assert db.query(f"SELECT count(*) FROM {tbl}")[0][0] == before, dialect
        db.execute(lower)  # the same row in lower case is fine
        assert db.query(f"SELECT count(*) FROM {tbl}")[0][0] == before + 1, dialect


def test_deleting_a_domain_deletes_what_hangs_off_it(demo):
    results = {}
    for dialect, db in demo.items():
        db.execute("DELETE FROM domains WHERE name = ?", ("example.com",))
        r = demo_facts(db)
        results[dialect] = {k: r[k] for k in ("mailboxes", "aliases", "alias_domains",
                                              "domain_admins", "counts")}
        db.execute("DELETE FROM domains WHERE name = ?", ("example.net",))
        results[dialect]["after example.net"] = {
            t: db.query(f"SELECT count(*) FROM {t}")[0][0]
            for t in ("mailboxes", "aliases", "alias_targets", "domain_admins", "admins")}
    assert_same(results, "state after deleting domains")

    r = results["sqlite"]
    assert r["mailboxes"] == [DEMO_MAILBOXES[2]]
    assert r["aliases"] == {"@example.net": ["carol@example.net"]}
    assert r["alias_domains"] == []
    assert r["domain_admins"] == [("netadmin", "example.net")]
    assert r["counts"]["alias_targets"] == 1
    assert r["after example.net"] == {"mailboxes": 0, "aliases": 0, "alias_targets": 0,
                                      "domain_admins": 0, "admins": 2}
