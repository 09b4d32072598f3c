-- postern schema, migration 0001: the initial schema (SQLite 3.24 or later).
--
-- The same logical schema exists for MariaDB/MySQL (sql/mysql) and
-- PostgreSQL (sql/pgsql); tests/system/test_schema.py loads all three and
-- fails if they differ.  Change all three together, in a new migration.
--
-- Rules (see sql/README.md): idempotent (IF NOT EXISTS, ON CONFLICT DO
-- NOTHING), a statement ends with ';' at the end of a line and nothing else
-- does, never edit a migration once released.
--
-- SQLite notes:
--   * Foreign keys (and so ON DELETE CASCADE) are enforced only on
--     connections that run PRAGMA foreign_keys = ON; every postern
--     connection must.
--   * Booleans are INTEGER 0/1 with a CHECK; VARCHAR(n) lengths are not
--     enforced by SQLite, they document the limit the other dialects apply.
--   * Timestamps are UTC text 'YYYY-MM-DD HH:MM:SS' (CURRENT_TIMESTAMP).
--   * lower() folds ASCII only: store domains as IDNA A-labels.
--   * Upper-case names and addresses are refused by CHECKs; the application
--     folds keys to lower case before it looks them up.

CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER NOT NULL PRIMARY KEY,
    applied_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- One row per hosted domain (virtual_mailbox_domains).
--   max_mailboxes, max_aliases: 0 = unlimited.
--   default_quota_bytes: quota of mailboxes whose quota_bytes is NULL;
--                        0 = unlimited.
--   total_quota_bytes:   sum allowed over the domain's mailboxes; 0 = unlimited.
--   transport: NULL, or a per-domain transport_maps result such as
--              'lmtp:unix:private/dovecot-lmtp' or 'smtp:[mx.example.net]'.
--   backup_mx: accept and relay for the domain instead of delivering.
--   uid, gid:  NULL, or the owner of the domain's maildirs (overrides
--              virtual_uid_maps / virtual_gid_maps).
CREATE TABLE IF NOT EXISTS domains (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 VARCHAR(255) NOT NULL,
    description          VARCHAR(255) NOT NULL DEFAULT '',
    active               INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    max_mailboxes        INTEGER NOT NULL DEFAULT 0 CHECK (max_mailboxes >= 0),
    max_aliases          INTEGER NOT NULL DEFAULT 0 CHECK (max_aliases >= 0),
    default_quota_bytes  BIGINT NOT NULL DEFAULT 0 CHECK (default_quota_bytes >= 0),
    total_quota_bytes    BIGINT NOT NULL DEFAULT 0 CHECK (total_quota_bytes >= 0),
    transport            VARCHAR(255),
    backup_mx            INTEGER NOT NULL DEFAULT 0 CHECK (backup_mx IN (0, 1)),
    uid                  INTEGER,
    gid                  INTEGER,
    created_at           DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified_at          DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT domains_name_key UNIQUE (name),
    CONSTRAINT domains_name_lower CHECK (name = lower(name))
);

-- One row per mailbox (virtual_mailbox_maps, Dovecot passdb/userdb).
--   address:  'local_part@domain name', lower case.
--   password: Dovecot scheme-prefixed hash, '{ARGON2ID}$argon2id$...',
--             '{BLF-CRYPT}$2y$...' or '{SHA512-CRYPT}$6$...'.
--   quota_bytes:    NULL = the domain's default_quota_bytes; 0 = unlimited.
--   quota_messages: NULL or 0 = unlimited.
--   maildir:  relative to virtual_mailbox_base, ends in '/'
--             ('example.com/alice/').
CREATE TABLE IF NOT EXISTS mailboxes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id       BIGINT NOT NULL,
    local_part      VARCHAR(255) NOT NULL,
    address         VARCHAR(255) NOT NULL,
    password        VARCHAR(255) NOT NULL,
    name            VARCHAR(255) NOT NULL DEFAULT '',
    quota_bytes     BIGINT CHECK (quota_bytes >= 0),
    quota_messages  INTEGER CHECK (quota_messages >= 0),
    active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    maildir         VARCHAR(255) NOT NULL,
    created_at      DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified_at     DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT mailboxes_domain_id_fkey FOREIGN KEY (domain_id)
        REFERENCES domains (id) ON DELETE CASCADE,
    CONSTRAINT mailboxes_address_key UNIQUE (address),
    CONSTRAINT mailboxes_domain_id_local_part_key UNIQUE (domain_id, local_part),
    CONSTRAINT mailboxes_local_part_lower CHECK (local_part = lower(local_part)),
    CONSTRAINT mailboxes_address_lower CHECK (address = lower(address)),
    CONSTRAINT mailboxes_maildir_slash CHECK (maildir LIKE '%/')
);

-- One row per alias address (virtual_alias_maps); its targets are in
-- alias_targets.  address is 'info@example.com', or '@example.com' for the
-- domain's catch-all.
CREATE TABLE IF NOT EXISTS aliases (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id    BIGINT NOT NULL,
    address      VARCHAR(255) NOT NULL,
    active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at   DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT aliases_domain_id_fkey FOREIGN KEY (domain_id)
        REFERENCES domains (id) ON DELETE CASCADE,
    CONSTRAINT aliases_address_key UNIQUE (address),
    CONSTRAINT aliases_address_lower CHECK (address = lower(address))
);

-- Where an alias goes: local mailboxes, other aliases, or remote addresses
-- (forwarding).  Several rows per alias.
CREATE TABLE IF NOT EXISTS alias_targets (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    alias_id  BIGINT NOT NULL,
    target    VARCHAR(255) NOT NULL,
    CONSTRAINT alias_targets_alias_id_fkey FOREIGN KEY (alias_id)
        REFERENCES aliases (id) ON DELETE CASCADE,
    CONSTRAINT alias_targets_alias_id_target_key UNIQUE (alias_id, target)
);

-- An alias domain: mail for x@name goes to x@<target domain>.
CREATE TABLE IF NOT EXISTS alias_domains (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              VARCHAR(255) NOT NULL,
    target_domain_id  BIGINT NOT NULL,
    active            INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at        DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT alias_domains_target_domain_id_fkey FOREIGN KEY (target_domain_id)
        REFERENCES domains (id) ON DELETE CASCADE,
    CONSTRAINT alias_domains_name_key UNIQUE (name),
    CONSTRAINT alias_domains_name_lower CHECK (name = lower(name))
);

-- Current usage per mailbox, kept up to date by postern's virtual delivery
-- agent.  The layout is the one Dovecot's dict quota expects, so Dovecot can
-- share it (quota = dict:User quota::proxy::sqlquota) with this dict-sql map:
--
--   map {
--     pattern = priv/quota/storage
--     table = quota_usage
--     username_field = username
--     value_field = bytes
--   }
--   map {
--     pattern = priv/quota/messages
--     table = quota_usage
--     username_field = username
--     value_field = messages
--   }
--
-- username is the mailbox address.  No foreign key: Dovecot creates rows
-- on its own, and a row left behind by a deleted mailbox is harmless.
CREATE TABLE IF NOT EXISTS quota_usage (
    username  VARCHAR(255) NOT NULL PRIMARY KEY,
    bytes     BIGINT NOT NULL DEFAULT 0,
    messages  INTEGER NOT NULL DEFAULT 0
);

-- Web admin and API users.  A superadmin manages everything; others manage
-- the domains listed for them in domain_admins.
CREATE TABLE IF NOT EXISTS admins (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    username    VARCHAR(255) NOT NULL,
    password    VARCHAR(255) NOT NULL,
    superadmin  INTEGER NOT NULL DEFAULT 0 CHECK (superadmin IN (0, 1)),
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_login  DATETIME,
    CONSTRAINT admins_username_key UNIQUE (username)
);

CREATE TABLE IF NOT EXISTS domain_admins (
    admin_id   BIGINT NOT NULL,
    domain_id  BIGINT NOT NULL,
    CONSTRAINT domain_admins_pkey PRIMARY KEY (admin_id, domain_id),
    CONSTRAINT domain_admins_admin_id_fkey FOREIGN KEY (admin_id)
        REFERENCES admins (id) ON DELETE CASCADE,
    CONSTRAINT domain_admins_domain_id_fkey FOREIGN KEY (domain_id)
        REFERENCES domains (id) ON DELETE CASCADE
);

-- JSON API bearer tokens.  Only a hash of the token is stored.
CREATE TABLE IF NOT EXISTS api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    admin_id      BIGINT NOT NULL,
    token_hash    VARCHAR(255) NOT NULL,
    description   VARCHAR(255) NOT NULL DEFAULT '',
    created_at    DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at    DATETIME,
    last_used_at  DATETIME,
    CONSTRAINT api_tokens_admin_id_fkey FOREIGN KEY (admin_id)
        REFERENCES admins (id) ON DELETE CASCADE,
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
);

-- What admins did.  Plain text, no foreign keys: the log outlives the
-- admins and domains it names.
CREATE TABLE IF NOT EXISTS admin_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    admin   VARCHAR(255) NOT NULL,
    domain  VARCHAR(255),
    action  VARCHAR(255) NOT NULL,
    data    TEXT NOT NULL
);

-- Indexes.  Every foreign key column leads some index (mailboxes.domain_id,
-- alias_targets.alias_id and domain_admins.admin_id lead their UNIQUE or
-- PRIMARY KEY); the daemons' lookups (domains.name, mailboxes.address,
-- aliases.address, alias_domains.name) use the UNIQUE indexes.
CREATE INDEX IF NOT EXISTS aliases_domain_id_idx ON aliases (domain_id);
CREATE INDEX IF NOT EXISTS alias_domains_target_domain_id_idx ON alias_domains (target_domain_id);
CREATE INDEX IF NOT EXISTS domain_admins_domain_id_idx ON domain_admins (domain_id);
CREATE INDEX IF NOT EXISTS api_tokens_admin_id_idx ON api_tokens (admin_id);
CREATE INDEX IF NOT EXISTS alias_targets_target_idx ON alias_targets (target);
CREATE INDEX IF NOT EXISTS admin_log_at_idx ON admin_log (at);
CREATE INDEX IF NOT EXISTS admin_log_domain_at_idx ON admin_log (domain, at);

INSERT INTO schema_version (version) VALUES (1)
    ON CONFLICT (version) DO NOTHING;
