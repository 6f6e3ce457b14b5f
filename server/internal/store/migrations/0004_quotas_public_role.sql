-- bitd metadata schema, version 4: storage quotas.
--
-- A platform database over its storage_limit_bytes is frozen (quota.go):
-- what its roles owned belongs to a NOLOGIN role for as long as it is over,
-- and the privileges that let anything grow it are taken away. saved holds
-- the statements that give those privileges back when it thaws. The
-- database's own state (who owns it) says whether it is frozen; this row
-- only remembers what to give back.
CREATE TABLE quota_freezes (
    database_id  text PRIMARY KEY REFERENCES databases (id) ON DELETE CASCADE,
    frozen_at    timestamptz NOT NULL DEFAULT now(),
    usage_bytes  bigint NOT NULL,
    limit_bytes  bigint NOT NULL,
    saved        text[] NOT NULL
);
