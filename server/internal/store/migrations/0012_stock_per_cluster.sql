-- A database stock per cluster (stock.go): each row of db_stock says on
-- which cluster its database was provisioned, and db_stock_targets holds
-- each cluster's stock target while a burst of creations has raised it
-- above --db-stock (it falls back after --db-stock-decay without a
-- shortfall).
ALTER TABLE db_stock ADD COLUMN placement text NOT NULL DEFAULT 'default';
DROP INDEX db_stock_ready;
CREATE INDEX db_stock_ready ON db_stock (stock_key, placement, created_at) WHERE ready;

CREATE TABLE db_stock_targets (
    placement     text PRIMARY KEY,
    target        integer NOT NULL CHECK (target >= 0),
    shortfall_at  timestamptz NOT NULL
);
