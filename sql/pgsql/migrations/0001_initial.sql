-- postern schema, migration 0001: the initial schema (PostgreSQL, tested on 15).
--
-- The same logical schema exists for SQLite (sql/sqlite) and MariaDB/MySQL
-- (sql/mysql); tests/system/test_schema.py loads all three and fails if
-- they differ.  Change all three together, in a new migration.
--
-- Rules (see sql/README.md): idempotent (IF NOT EXISTS, ON CONFLICT DO
-- NOTHING), a statement ends with ';' at the end of a line and nothing else
-- does, never edit a migration once released.
--
-- PostgreSQL notes:
--   * Tables go into the first schema of the connection's search_path
--     (normally public).
--   * Timestamps are TIMESTAMPTZ: unambiguous whatever the session time zone.
--   * BOOLEAN columns: the portable Postfix-style test is active = '1'
--     (a quoted literal), which PostgreSQL, MariaDB and SQLite all accept;
--     active = 1 (an integer) fails here.
--   * Equality and UNIQUE are case-sensitive, as in the other dialects; the
--     application folds keys to lower case, the CHECKs refuse upper case.

CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER NOT NULL PRIMARY KEY,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
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
    id                   BIGSERIAL PRIMARY KEY,
    name                 VARCHAR(255) NOT NULL,
    description          VARCHAR(255) NOT NULL DEFAULT '',
    active               BOOLEAN NOT NULL DEFAULT TRUE,
    max_mailboxes        INTEGER NOT NULL DEFAULT 0 CHECK (max_mailboxes >= 0),
    max_aliases          INTEGER NOT NULL DEFAULT 0 CHECK (max_aliases >= 0),
    default_quota_bytes  BIGINT NOT NULL DEFAULT 0 CHECK (default_quota_bytes >= 0),
    total_quota_bytes    BIGINT NOT NULL DEFAULT 0 CHECK (total_quota_bytes >= 0),
    transport            VARCHAR(255),
    backup_mx            BOOLEAN NOT NULL DEFAULT FALSE,
    uid                  INTEGER,
    gid                  INTEGER,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified_at          TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
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
    id              BIGSERIAL PRIMARY KEY,
    domain_id       BIGINT NOT NULL,
    local_part      VARCHAR(255) NOT NULL,
    address         VARCHAR(255) NOT NULL,
    password        VARCHAR(255) NOT NULL,
    name            VARCHAR(255) NOT NULL DEFAULT '',
    quota_bytes     BIGINT CHECK (quota_bytes >= 0),
    quota_messages  INTEGER CHECK (quota_messages >= 0),
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    maildir         VARCHAR(255) NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified_at     TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
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
    id           BIGSERIAL PRIMARY KEY,
    domain_id    BIGINT NOT NULL,
    address      VARCHAR(255) NOT NULL,
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified_at  TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT aliases_domain_id_fkey FOREIGN KEY (domain_id)
        REFERENCES domains (id) ON DELETE CASCADE,
    CONSTRAINT aliases_address_key UNIQUE (address),
    CONSTRAINT aliases_address_lower CHECK (address = lower(address))
);

-- Where an alias goes: local mailboxes, other aliases, or remote addresses
-- (forwarding).  Several rows per alias.
CREATE TABLE IF NOT EXISTS alias_targets (
    id        BIGSERIAL PRIMARY KEY,
    alias_id  BIGINT NOT NULL,
    target    VARCHAR(255) NOT NULL,
    CONSTRAINT alias_targets_alias_id_fkey FOREIGN KEY (alias_id)
        REFERENCES aliases (id) ON DELETE CASCADE,
    CONSTRAINT alias_targets_alias_id_target_key UNIQUE (alias_id, target)
);

-- An alias domain: mail for x@name goes to x@<target domain>.
CREATE TABLE IF NOT EXISTS alias_domains (
    id                BIGSERIAL PRIMARY KEY,
    name              VARCHAR(255) NOT NULL,
    target_domain_id  BIGINT NOT NULL,
    active            BOOLEAN NOT NULL DEFAULT TRUE,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
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
    id          BIGSERIAL PRIMARY KEY,
    username    VARCHAR(255) NOT NULL,
    password    VARCHAR(255) NOT NULL,
    superadmin  BOOLEAN NOT NULL DEFAULT FALSE,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_login  TIMESTAMPTZ,
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
    id            BIGSERIAL PRIMARY KEY,
    admin_id      BIGINT NOT NULL,
    token_hash    VARCHAR(255) NOT NULL,
    description   VARCHAR(255) NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    CONSTRAINT api_tokens_admin_id_fkey FOREIGN KEY (admin_id)
        REFERENCES admins (id) ON DELETE CASCADE,
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
);

-- What admins did.  Plain text, no foreign keys: the log outlives the
-- admins and domains it names.
CREATE TABLE IF NOT EXISTS admin_log (
    id      BIGSERIAL PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
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
