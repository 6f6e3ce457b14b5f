-- bitd metadata schema, version 1.
CREATE TABLE accounts (
    id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('personal', 'org')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_name_ci ON accounts (lower(name));

CREATE TABLE users (
    id               text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name             text NOT NULL,
    password_hash    text,
    default_account  text NOT NULL REFERENCES accounts (id),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_name_ci ON users (lower(name));

CREATE TABLE account_members (
    account_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('OWNER', 'ADMIN', 'WRITER', 'READER')),
    PRIMARY KEY (account_id, user_id)
);
CREATE INDEX account_members_user ON account_members (user_id);

CREATE TABLE service_accounts (
    id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    account_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('ADMIN', 'WRITER', 'READER')),
    created_by  text REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX service_accounts_account ON service_accounts (account_id);

CREATE TABLE api_keys (
    id                  text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    hash                text NOT NULL UNIQUE,
    user_id             text REFERENCES users (id) ON DELETE CASCADE,
    service_account_id  text REFERENCES service_accounts (id) ON DELETE CASCADE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    revoked_at          timestamptz,
    last_used_at        timestamptz,
    CHECK ((user_id IS NULL) <> (service_account_id IS NULL))
);
CREATE INDEX api_keys_user ON api_keys (user_id);
CREATE INDEX api_keys_sa ON api_keys (service_account_id);

CREATE TABLE access_tokens (
    id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    hash        text NOT NULL UNIQUE,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE TABLE databases (
    id                   text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    account_id           text NOT NULL REFERENCES accounts (id),
    name                 text NOT NULL,
    pg_name              text NOT NULL UNIQUE,
    is_private           boolean NOT NULL DEFAULT true,
    storage_limit_bytes  bigint NOT NULL DEFAULT 0,
    placement            text NOT NULL DEFAULT 'default',
    created_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz
);
CREATE UNIQUE INDEX databases_live_name ON databases (account_id, lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE name_reservations (
    account_id      text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name_lower      text NOT NULL,
    reserved_until  timestamptz NOT NULL,
    PRIMARY KEY (account_id, name_lower)
);

CREATE TABLE collaborators (
    database_id  text NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('ADMIN', 'WRITER', 'READER')),
    PRIMARY KEY (database_id, user_id)
);

CREATE TABLE service_account_databases (
    service_account_id  text NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    database_id         text NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    PRIMARY KEY (service_account_id, database_id)
);

CREATE TABLE usage (
    database_id   text NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    period_start  date NOT NULL,
    rows_queried  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (database_id, period_start)
);
