-- bitd metadata schema, version 2: server-wide settings, such as the
-- fingerprint of the server secret that role passwords derive from.
CREATE TABLE server_settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
