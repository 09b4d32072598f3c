-- Rows added to the demo data (sql/<dialect>/demo.sql) by the db:NAME
-- table tests: tests/system/test_db_tables.py on SQLite, MariaDB and
-- PostgreSQL, and tests/unit/test_db_table.c on SQLite. One statement per
-- ';' at the end of a line (the sql/ runner's rule), and SQL that all
-- three dialects accept: booleans are written '0' and '1' (quoted).
--
--   inactive.example        inactive domain, with an active mailbox and alias
--   eve@example.com         inactive mailbox in an active domain
--   old@example.com         inactive alias -> alice@example.com
--   example.info            inactive alias domain of example.com
--   backup.example          backup MX domain (relay_domains)
--   lmtp.example            transport, uid 5001, gid 5002, default quota 1000
--     frank@lmtp.example      quota NULL: the domain default
--     @lmtp.example           catch-all -> frank@lmtp.example
--   lmtp-alias.example      alias domain of lmtp.example
--   bob@example.com         alias to itself and a forward (keep a copy)
--   team@example.com        alias -> alice, bob, eve (inactive), someone remote

INSERT INTO domains (name, description, active) VALUES ('inactive.example', 'off', '0');
INSERT INTO mailboxes (domain_id, local_part, address, password, maildir)
SELECT id, 'dave', 'dave@inactive.example', '{PLAIN}x', 'inactive.example/dave/'
FROM domains WHERE name = 'inactive.example';
INSERT INTO aliases (domain_id, address)
SELECT id, 'info@inactive.example' FROM domains WHERE name = 'inactive.example';
INSERT INTO alias_targets (alias_id, target)
SELECT id, 'dave@inactive.example' FROM aliases WHERE address = 'info@inactive.example';

INSERT INTO mailboxes (domain_id, local_part, address, password, active, maildir)
SELECT id, 'eve', 'eve@example.com', '{PLAIN}x', '0', 'example.com/eve/'
FROM domains WHERE name = 'example.com';

INSERT INTO aliases (domain_id, address, active)
SELECT id, 'old@example.com', '0' FROM domains WHERE name = 'example.com';
INSERT INTO alias_targets (alias_id, target)
SELECT id, 'alice@example.com' FROM aliases WHERE address = 'old@example.com';

INSERT INTO alias_domains (name, target_domain_id, active)
SELECT 'example.info', id, '0' FROM domains WHERE name = 'example.com';

INSERT INTO domains (name, backup_mx) VALUES ('backup.example', '1');

INSERT INTO domains (name, transport, uid, gid, default_quota_bytes)
VALUES ('lmtp.example', 'lmtp:unix:private/dovecot-lmtp', 5001, 5002, 1000);
INSERT INTO mailboxes (domain_id, local_part, address, password, maildir)
SELECT id, 'frank', 'frank@lmtp.example', '{PLAIN}x', 'lmtp.example/frank/'
FROM domains WHERE name = 'lmtp.example';
INSERT INTO aliases (domain_id, address)
SELECT id, '@lmtp.example' FROM domains WHERE name = 'lmtp.example';
INSERT INTO alias_targets (alias_id, target)
SELECT id, 'frank@lmtp.example' FROM aliases WHERE address = '@lmtp.example';
INSERT INTO alias_domains (name, target_domain_id)
SELECT 'lmtp-alias.example', id FROM domains WHERE name = 'lmtp.example';

INSERT INTO aliases (domain_id, address)
SELECT id, 'bob@example.com' FROM domains WHERE name = 'example.com';
INSERT INTO alias_targets (alias_id, target)
SELECT id, 'bob@example.com' FROM aliases WHERE address = 'bob@example.com';
INSERT INTO alias_targets (alias_id, target)
SELECT id, 'archive@remote.example' FROM aliases WHERE address = 'bob@example.com';

INSERT INTO aliases (domain_id, address)
SELECT id, 'team@example.com' FROM domains WHERE name = 'example.com';
INSERT INTO alias_targets (alias_id, target)
SELECT id, 'eve@example.com' FROM aliases WHERE address = 'team@example.com';
INSERT INTO alias_targets (alias_id, target)
SELECT id, 'bob@example.com' FROM aliases WHERE address = 'team@example.com';
INSERT INTO alias_targets (alias_id, target)
SELECT id, 'zed@remote.example' FROM aliases WHERE address = 'team@example.com';
INSERT INTO alias_targets (alias_id, target)
SELECT id, 'alice@example.com' FROM aliases WHERE address = 'team@example.com';
