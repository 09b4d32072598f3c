-- postern schema, migration 0001: the initial schema (MariaDB/MySQL).
--
-- The same logical schema exists for SQLite (sql/sqlite) and PostgreSQL
-- (sql/pgsql); tests/system/test_schema.py loads all three and fails if
-- they differ.  Change all three together, in a new migration.
--
-- Rules (see sql/README.md): idempotent (IF NOT EXISTS, ON DUPLICATE KEY
-- UPDATE), a statement ends with ';' at the end of a line and nothing else
-- does, never edit a migration once released.
--
-- MariaDB/MySQL notes:
--   * Every table is InnoDB, utf8mb4 with the binary collation utf8mb4_bin.
--     Comparisons are exact, as in SQLite and PostgreSQL: a lookup of
--     'Alice@example.com' does not find 'alice@example.com' (the
--     application folds keys to lower case first), and the lower-case
--     CHECKs below work.  With a case-insensitive collation they would let
--     anything through.
--   * Indexes are declared inside CREATE TABLE, which makes them as
--     idempotent as the table, and lets each foreign key use its named index
--     from the start instead of one InnoDB makes up.  Every foreign key
--     column leads some index (mailboxes.domain_id, alias_targets.alias_id
--     and domain_admins.admin_id lead their UNIQUE or PRIMARY KEY); the
--     daemons' lookups (domains.name, mailboxes.address, aliases.address,
--     alias_domains.name) use the UNIQUE indexes.
--   * Tested on MariaDB 10.11.  The file avoids MariaDB-only syntax, but
--     Oracle MySQL (8.0.16+ for enforced CHECKs) is not tested.
--   * Booleans are TINYINT(1) restricted to 0/1.
--   * Timestamps are DATETIME (no 2038 limit) in the session time zone;
--     postern's connections are to SET time_zone = '+00:00' so that they
--     hold UTC, as in the other dialects.

CREATE TABLE IF NOT EXISTS schema_version (
    version     INT NOT NULL,
    applied_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT schema_version_pkey PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

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
    id                   BIGINT NOT NULL AUTO_INCREMENT,
    name                 VARCHAR(255) NOT NULL,
    description          VARCHAR(255) NOT NULL DEFAULT '',
    active               TINYINT(1) NOT NULL DEFAULT 1,
    max_mailboxes        INT NOT NULL DEFAULT 0,
    max_aliases          INT NOT NULL DEFAULT 0,
    default_quota_bytes  BIGINT NOT NULL DEFAULT 0,
    total_quota_bytes    BIGINT NOT NULL DEFAULT 0,
    transport            VARCHAR(255) NULL,
    backup_mx            TINYINT(1) NOT NULL DEFAULT 0,
    uid                  INT NULL,
    gid                  INT NULL,
    created_at           DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified_at          DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT domains_pkey PRIMARY KEY (id),
    CONSTRAINT domains_name_key UNIQUE KEY (name),
    CONSTRAINT domains_name_lower CHECK (name = lower(name)),
    CONSTRAINT domains_active_bool CHECK (active IN (0, 1)),
    CONSTRAINT domains_backup_mx_bool CHECK (backup_mx IN (0, 1)),
    CONSTRAINT domains_limits CHECK (max_mailboxes >= 0 AND max_aliases >= 0
        AND default_quota_bytes >= 0 AND total_quota_bytes >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per mailbox (virtual_mailbox_maps, Dovecot passdb/userdb).
--   address:  'local_part@domain name', lower case.
--   password: Dovecot scheme-prefixed hash, '{ARGON2ID}$argon2id$...',
--             '{BLF-CRYPT}$2y$...' or '{SHA512-CRYPT}$6$...'.
--   quota_bytes:    NULL = the domain's default_quota_bytes; 0 = unlimited.
--   quota_messages: NULL or 0 = unlimited.
--   maildir:  relative to virtual_mailbox_base, ends in '/'
--             ('example.com/alice/').
CREATE TABLE IF NOT EXISTS mailboxes (
    id              BIGINT NOT NULL AUTO_INCREMENT,
    domain_id       BIGINT NOT NULL,
    local_part      VARCHAR(255) NOT NULL,
    address         VARCHAR(255) NOT NULL,
    password        VARCHAR(255) NOT NULL,
    name            VARCHAR(255) NOT NULL DEFAULT '',
    quota_bytes     BIGINT NULL,
    quota_messages  INT NULL,
    active          TINYINT(1) NOT NULL DEFAULT 1,
    maildir         VARCHAR(255) NOT NULL,
    created_at      DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified_at     DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT mailboxes_pkey PRIMARY KEY (id),
    CONSTRAINT mailboxes_domain_id_fkey FOREIGN KEY (domain_id)
        REFERENCES domains (id) ON DELETE CASCADE,
    CONSTRAINT mailboxes_address_key UNIQUE KEY (address),
    CONSTRAINT mailboxes_domain_id_local_part_key UNIQUE KEY (domain_id, local_part),
    CONSTRAINT mailboxes_local_part_lower CHECK (local_part = lower(local_part)),
    CONSTRAINT mailboxes_address_lower CHECK (address = lower(address)),
    CONSTRAINT mailboxes_maildir_slash CHECK (maildir LIKE '%/'),
    CONSTRAINT mailboxes_active_bool CHECK (active IN (0, 1)),
    CONSTRAINT mailboxes_quota CHECK (quota_bytes >= 0 AND quota_messages >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per alias address (virtual_alias_maps); its targets are in
-- alias_targets.  address is 'info@example.com', or '@example.com' for the
-- domain's catch-all.
CREATE TABLE IF NOT EXISTS aliases (
    id           BIGINT NOT NULL AUTO_INCREMENT,
    domain_id    BIGINT NOT NULL,
    address      VARCHAR(255) NOT NULL,
    active       TINYINT(1) NOT NULL DEFAULT 1,
    created_at   DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT aliases_pkey PRIMARY KEY (id),
    CONSTRAINT aliases_domain_id_fkey FOREIGN KEY (domain_id)
        REFERENCES domains (id) ON DELETE CASCADE,
    CONSTRAINT aliases_address_key UNIQUE KEY (address),
    INDEX aliases_domain_id_idx (domain_id),
    CONSTRAINT aliases_address_lower CHECK (address = lower(address)),
    CONSTRAINT aliases_active_bool CHECK (active IN (0, 1))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Where an alias goes: local mailboxes, other aliases, or remote addresses
-- (forwarding).  Several rows per alias.
CREATE TABLE IF NOT EXISTS alias_targets (
    id        BIGINT NOT NULL AUTO_INCREMENT,
    alias_id  BIGINT NOT NULL,
    target    VARCHAR(255) NOT NULL,
    CONSTRAINT alias_targets_pkey PRIMARY KEY (id),
    CONSTRAINT alias_targets_alias_id_fkey FOREIGN KEY (alias_id)
        REFERENCES aliases (id) ON DELETE CASCADE,
    CONSTRAINT alias_targets_alias_id_target_key UNIQUE KEY (alias_id, target),
    INDEX alias_targets_target_idx (target)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- An alias domain: mail for x@name goes to x@<target domain>.
CREATE TABLE IF NOT EXISTS alias_domains (
    id                BIGINT NOT NULL AUTO_INCREMENT,
    name              VARCHAR(255) NOT NULL,
    target_domain_id  BIGINT NOT NULL,
    active            TINYINT(1) NOT NULL DEFAULT 1,
    created_at        DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT alias_domains_pkey PRIMARY KEY (id),
    CONSTRAINT alias_domains_target_domain_id_fkey FOREIGN KEY (target_domain_id)
        REFERENCES domains (id) ON DELETE CASCADE,
    CONSTRAINT alias_domains_name_key UNIQUE KEY (name),
    INDEX alias_domains_target_domain_id_idx (target_domain_id),
    CONSTRAINT alias_domains_name_lower CHECK (name = lower(name)),
    CONSTRAINT alias_domains_active_bool CHECK (active IN (0, 1))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

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
    username  VARCHAR(255) NOT NULL,
    bytes     BIGINT NOT NULL DEFAULT 0,
    messages  INT NOT NULL DEFAULT 0,
    CONSTRAINT quota_usage_pkey PRIMARY KEY (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Web admin and API users.  A superadmin manages everything; others manage
-- the domains listed for them in domain_admins.
CREATE TABLE IF NOT EXISTS admins (
    id          BIGINT NOT NULL AUTO_INCREMENT,
    username    VARCHAR(255) NOT NULL,
    password    VARCHAR(255) NOT NULL,
    superadmin  TINYINT(1) NOT NULL DEFAULT 0,
    active      TINYINT(1) NOT NULL DEFAULT 1,
    created_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_login  DATETIME NULL,
    CONSTRAINT admins_pkey PRIMARY KEY (id),
    CONSTRAINT admins_username_key UNIQUE KEY (username),
    CONSTRAINT admins_superadmin_bool CHECK (superadmin IN (0, 1)),
    CONSTRAINT admins_active_bool CHECK (active IN (0, 1))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS domain_admins (
    admin_id   BIGINT NOT NULL,
    domain_id  BIGINT NOT NULL,
    CONSTRAINT domain_admins_pkey PRIMARY KEY (admin_id, domain_id),
    CONSTRAINT domain_admins_admin_id_fkey FOREIGN KEY (admin_id)
        REFERENCES admins (id) ON DELETE CASCADE,
    CONSTRAINT domain_admins_domain_id_fkey FOREIGN KEY (domain_id)
        REFERENCES domains (id) ON DELETE CASCADE,
    INDEX domain_admins_domain_id_idx (domain_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- JSON API bearer tokens.  Only a hash of the token is stored.
CREATE TABLE IF NOT EXISTS api_tokens (
    id            BIGINT NOT NULL AUTO_INCREMENT,
    admin_id      BIGINT NOT NULL,
    token_hash    VARCHAR(255) NOT NULL,
    description   VARCHAR(255) NOT NULL DEFAULT '',
    created_at    DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at    DATETIME NULL,
    last_used_at  DATETIME NULL,
    CONSTRAINT api_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT api_tokens_admin_id_fkey FOREIGN KEY (admin_id)
        REFERENCES admins (id) ON DELETE CASCADE,
    CONSTRAINT api_tokens_token_hash_key UNIQUE KEY (token_hash),
    INDEX api_tokens_admin_id_idx (admin_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- What admins did.  Plain text, no foreign keys: the log outlives the
-- admins and domains it names.
CREATE TABLE IF NOT EXISTS admin_log (
    id      BIGINT NOT NULL AUTO_INCREMENT,
    at      DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    admin   VARCHAR(255) NOT NULL,
    domain  VARCHAR(255) NULL,
    action  VARCHAR(255) NOT NULL,
    data    TEXT NOT NULL,
    CONSTRAINT admin_log_pkey PRIMARY KEY (id),
    INDEX admin_log_at_idx (at),
    INDEX admin_log_domain_at_idx (domain, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO schema_version (version) VALUES (1)
    ON DUPLICATE KEY UPDATE version = version;
