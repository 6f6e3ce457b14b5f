-- bitd metadata schema, version 5: fast creation and background drops.
--
-- db_stock holds PostgreSQL databases being provisioned or provisioned ahead
-- of demand (the stock, stock.go). A row is written before its database and
-- roles are created and stays locked (FOR UPDATE) by the bitd provisioning
-- it; a row that is neither ready nor locked was left by a bitd that died
-- mid-way, and its objects are dropped. stock_key names the build and the
-- settings a database was provisioned with: only a bitd with the same key
-- hands it out, others reclaim it.
CREATE TABLE db_stock (
    pg_name     text PRIMARY KEY,
    stock_key   text NOT NULL,
    ready       boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX db_stock_ready ON db_stock (stock_key, created_at) WHERE ready;

-- A deleted database's PostgreSQL objects are dropped in the background:
-- dropped_at says the drop finished. Databases deleted before this version
-- were dropped at once (or are finished at start-up).
ALTER TABLE databases ADD COLUMN dropped_at timestamptz;
UPDATE databases SET dropped_at = deleted_at WHERE deleted_at IS NOT NULL;
CREATE INDEX databases_to_drop ON databases (deleted_at) WHERE deleted_at IS NOT NULL AND dropped_at IS NULL;
