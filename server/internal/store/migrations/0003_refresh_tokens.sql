-- bitd metadata schema, version 3: refresh tokens.
--
-- A login starts a refresh family (one session); every refresh rotates the
-- family's token: the traded token is marked used and a new one is issued.
-- Presenting a used token again means it was copied, so the whole family is
-- revoked, with the access tokens it issued. Tokens are stored as SHA-256
-- hashes only.
CREATE TABLE refresh_families (
    id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- the absolute end of the session, whatever its refreshes
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    -- why: 'logout', 'reuse', 'password'
    revoked_why text
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    hash        text NOT NULL UNIQUE,
    family_id   text NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- the idle end: created_at + the idle lifetime, capped by the family's end
    expires_at  timestamptz NOT NULL,
    -- set when the token was traded for a new pair (rotated)
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- The refresh family an access token was issued for (NULL: none), so that
-- revoking a session revokes its access tokens too.
ALTER TABLE access_tokens ADD COLUMN family_id text REFERENCES refresh_families (id) ON DELETE CASCADE;
CREATE INDEX access_tokens_family ON access_tokens (family_id) WHERE family_id IS NOT NULL;
