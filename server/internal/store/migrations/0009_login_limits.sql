-- bitd metadata schema, version 9: login rate limits shared by replicas.
--
-- One row per limited key (a user name or a client address, as the HTTP
-- API names them) and fixed window: n counts the window's failed logins
-- plus the attempts still being verified (in_flight), and the window ends
-- at reset_at. A login costs two single-row-per-key writes (reserve, then
-- settle), a refused login none. Rows whose window has ended are swept
-- (store.SweepLoginLimits), so a flood of failures for random user names
-- keeps at most one window's worth of rows.
--
-- UNLOGGED: the counts are short-lived and not worth WAL; a crash of the
-- metadata database empties the table, which only restarts the windows.
-- No index beside the key, so updates stay HOT.
CREATE UNLOGGED TABLE login_limits (
    key        text PRIMARY KEY,
    n          integer NOT NULL,
    in_flight  integer NOT NULL,
    reset_at   timestamptz NOT NULL
) WITH (fillfactor = 70);
