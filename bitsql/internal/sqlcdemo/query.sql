-- Schema and queries the code in this package was written from (sqlc style).

CREATE TABLE accounts (
  id         bigserial PRIMARY KEY,
  owner      text NOT NULL,
  balance    numeric(20, 2) NOT NULL CHECK (balance >= 0),
  note       text,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE transfers (
  id      bigserial PRIMARY KEY,
  from_id bigint NOT NULL REFERENCES accounts (id),
  to_id   bigint NOT NULL REFERENCES accounts (id),
  amount  numeric(20, 2) NOT NULL
);

-- name: CreateAccount :one
INSERT INTO accounts (owner, balance, note) VALUES ($1, $2, $3)
RETURNING id, owner, balance, note, created_at;

-- name: GetAccountForUpdate :one
SELECT id, owner, balance, note, created_at FROM accounts WHERE id = $1 FOR UPDATE;

-- name: AddBalance :execrows
UPDATE accounts SET balance = balance + $2 WHERE id = $1;

-- name: CreateTransfer :one
INSERT INTO transfers (from_id, to_id, amount) VALUES ($1, $2, $3)
RETURNING id, from_id, to_id, amount;

-- name: ListAccounts :many
SELECT id, owner, balance, note, created_at FROM accounts ORDER BY id;
