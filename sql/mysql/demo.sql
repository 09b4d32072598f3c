-- postern demo data (MariaDB/MySQL).  Load after the migrations:
--
--   mariadb postern < sql/mysql/demo.sql
--
-- The same rows are in sql/{sqlite,mysql,pgsql}/demo.sql, where
-- rows refer to each other by name, never by id.  Loading twice changes
-- nothing: every INSERT ends in ON DUPLICATE KEY UPDATE (a no-op update).
-- Not for production: every password below is "demo".
--
--   example.com   default mailbox quota 50 MB
--     alice@example.com   quota 100 MB
--     bob@example.com     quota NULL: the domain default, 50 MB
--     info@example.com        -> alice@example.com, bob@example.com
--     postmaster@example.com  -> alice@example.com
--     fwd@example.com         -> someone@remote.example (forwarding)
--   example.net   no default quota
--     carol@example.net   quota 0: unlimited
--     @example.net (catch-all) -> carol@example.net
--   example.org   alias domain of example.com
--   admins: admin (superadmin), netadmin (manages example.net)
--
-- Password hashes made with: doveadm pw -s SHA512-CRYPT -p demo

INSERT INTO domains (name, description, default_quota_bytes)
VALUES ('example.com', 'Demo company', 52428800)
ON DUPLICATE KEY UPDATE domains.id = domains.id;

INSERT INTO domains (name, description, default_quota_bytes)
VALUES ('example.net', 'Demo network', 0)
ON DUPLICATE KEY UPDATE domains.id = domains.id;

INSERT INTO mailboxes (domain_id, local_part, address, password, name, quota_bytes, maildir)
SELECT id, 'alice', 'alice@example.com',
       '{SHA512-CRYPT}$6$IPfxIhBYfTdiaSeY$uJMzU6e5owBIVlAI.vaedJHY/YkkcGlCo7JXrlCfFBd8ciB/toz/V.W/XTLBmuj9iWoGtfoL2vxxtMydMSh0g1',
       'Alice Demo', 104857600, 'example.com/alice/'
FROM domains WHERE name = 'example.com'
ON DUPLICATE KEY UPDATE mailboxes.id = mailboxes.id;

INSERT INTO mailboxes (domain_id, local_part, address, password, name, quota_bytes, maildir)
SELECT id, 'bob', 'bob@example.com',
       '{SHA512-CRYPT}$6$JhhtXjdkUzDIFLDm$600Zoth7O5dl31CWnhlXJhh2P.0QeNTvil8e2ywoLBfLsgfbIYlDleJGY6r280O9Nv4He7r7XHoFGaAWrFbux1',
       'Bob Demo', NULL, 'example.com/bob/'
FROM domains WHERE name = 'example.com'
ON DUPLICATE KEY UPDATE mailboxes.id = mailboxes.id;

INSERT INTO mailboxes (domain_id, local_part, address, password, name, quota_bytes, maildir)
SELECT id, 'carol', 'carol@example.net',
       '{SHA512-CRYPT}$6$O3W.GaRe6BB9eKf3$sIiQVLZ8VSJ69wTxm2N3FPyv6NkyvwDiYMILscT8roYgeCx82qcQaLpVC4XhRZkC0ahGP6JLEqVL9T47AbIqO0',
       'Carol Demo', 0, 'example.net/carol/'
FROM domains WHERE name = 'example.net'
ON DUPLICATE KEY UPDATE mailboxes.id = mailboxes.id;

INSERT INTO aliases (domain_id, address)
SELECT id, 'info@example.com' FROM domains WHERE name = 'example.com'
ON DUPLICATE KEY UPDATE aliases.id = aliases.id;

INSERT INTO alias_targets (alias_id, target)
SELECT id, 'alice@example.com' FROM aliases WHERE address = 'info@example.com'
ON DUPLICATE KEY UPDATE alias_targets.id = alias_targets.id;

INSERT INTO alias_targets (alias_id, target)
SELECT id, 'bob@example.com' FROM aliases WHERE address = 'info@example.com'
ON DUPLICATE KEY UPDATE alias_targets.id = alias_targets.id;

INSERT INTO aliases (domain_id, address)
SELECT id, 'postmaster@example.com' FROM domains WHERE name = 'example.com'
ON DUPLICATE KEY UPDATE aliases.id = aliases.id;

INSERT INTO alias_targets (alias_id, target)
SELECT id, 'alice@example.com' FROM aliases WHERE address = 'postmaster@example.com'
ON DUPLICATE KEY UPDATE alias_targets.id = alias_targets.id;

INSERT INTO aliases (domain_id, address)
SELECT id, 'fwd@example.com' FROM domains WHERE name = 'example.com'
ON DUPLICATE KEY UPDATE aliases.id = aliases.id;

INSERT INTO alias_targets (alias_id, target)
SELECT id, 'someone@remote.example' FROM aliases WHERE address = 'fwd@example.com'
ON DUPLICATE KEY UPDATE alias_targets.id = alias_targets.id;

INSERT INTO aliases (domain_id, address)
SELECT id, '@example.net' FROM domains WHERE name = 'example.net'
ON DUPLICATE KEY UPDATE aliases.id = aliases.id;

INSERT INTO alias_targets (alias_id, target)
SELECT id, 'carol@example.net' FROM aliases WHERE address = '@example.net'
ON DUPLICATE KEY UPDATE alias_targets.id = alias_targets.id;

INSERT INTO alias_domains (name, target_domain_id)
SELECT 'example.org', id FROM domains WHERE name = 'example.com'
ON DUPLICATE KEY UPDATE alias_domains.id = alias_domains.id;

INSERT INTO admins (username, password, superadmin)
VALUES ('admin', '{SHA512-CRYPT}$6$84Y6fbLOigzGhX3g$Ec0j66lWZ0PZr2RLA7IoJTVskyNiMzZaG95T8mH7ZM.Lv3Fwyq6sfWEn.zU281Mwu1ovwr4nxuRocfjrJqeQf/', TRUE)
ON DUPLICATE KEY UPDATE admins.id = admins.id;

INSERT INTO admins (username, password, superadmin)
VALUES ('netadmin', '{SHA512-CRYPT}$6$/TQWoIbmXhbzd4J8$aMK9CKmuriE8bTRtB1RjuDJa704AB4QFZiRcwlVwjIgMNgVa54IA2l/aCBCFjQvls/xCXJKl2uffw1S7Pxq31.', FALSE)
ON DUPLICATE KEY UPDATE admins.id = admins.id;

INSERT INTO domain_admins (admin_id, domain_id)
SELECT a.id, d.id FROM admins a, domains d
WHERE a.username = 'netadmin' AND d.name = 'example.net'
ON DUPLICATE KEY UPDATE domain_admins.admin_id = domain_admins.admin_id;
