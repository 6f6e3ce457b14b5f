-- PostgreSQL clusters that hold platform databases (databases.placement
-- names one). 'default' is the cluster of bitd's --database-url, whose
-- admin_url stays '' (bitd's own URL is used). Other clusters' admin URLs
-- are stored without a password: bitd uses the password of its own admin
-- URL, or the one a passfile gives (docs/bitd.md, "Several clusters").
CREATE TABLE clusters (
    name         text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,39}$'),
    admin_url    text NOT NULL,
    tenant_addr  text NOT NULL DEFAULT '',
    state        text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'draining')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO clusters (name, admin_url) VALUES ('default', '');
CREATE INDEX databases_live_placement ON databases (placement) WHERE deleted_at IS NULL;
