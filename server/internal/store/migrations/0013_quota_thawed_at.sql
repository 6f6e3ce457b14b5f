-- bitd metadata schema: when a database last thawed (quota.go). A thaw
-- keeps its quota_freezes row with thawed_at set instead of deleting it, so
-- that a statement refused while the database was frozen, whose refusal is
-- explained only after the thaw, can be told from a permission the caller
-- lacks (quota.Explain). A freeze sets it back to NULL.
ALTER TABLE quota_freezes ADD COLUMN thawed_at timestamptz;
