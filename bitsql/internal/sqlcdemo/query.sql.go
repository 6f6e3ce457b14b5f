// source: query.sql

package sqlcdemo

import (
	"context"
	"database/sql"
)

const createAccount = `-- name: CreateAccount :one
INSERT INTO accounts (owner, balance, note) VALUES ($1, $2, $3)
RETURNING id, owner, balance, note, created_at
`

type CreateAccountParams struct {
	Owner   string
	Balance string
	Note    sql.NullString
}

func (q *Queries) CreateAccount(ctx context.Context, arg CreateAccountParams) (Account, error) {
	row := q.db.QueryRowContext(ctx, createAccount, arg.Owner, arg.Balance, arg.Note)
	var i Account
	err := row.Scan(
		&i.ID,
		&i.Owner,
		&i.Balance,
		&i.Note,
		&i.CreatedAt,
	)
	return i, err
}

const getAccountForUpdate = `-- name: GetAccountForUpdate :one
SELECT id, owner, balance, note, created_at FROM accounts WHERE id = $1 FOR UPDATE
`

func (q *Queries) GetAccountForUpdate(ctx context.Context, id int64) (Account, error) {
	row := q.db.QueryRowContext(ctx, getAccountForUpdate, id)
	var i Account
	err := row.Scan(
		&i.ID,
		&i.Owner,
		&i.Balance,
		&i.Note,
		&i.CreatedAt,
	)
	return i, err
}

const addBalance = `-- name: AddBalance :execrows
UPDATE accounts SET balance = balance + $2 WHERE id = $1
`

type AddBalanceParams struct {
	ID     int64
	Amount string
}

func (q *Queries) AddBalance(ctx context.Context, arg AddBalanceParams) (int64, error) {
	result, err := q.db.ExecContext(ctx, addBalance, arg.ID, arg.Amount)
	if err != nil {
		return 0, err
	}
	return result.RowsAffected()
}

const createTransfer = `-- name: CreateTransfer :one
INSERT INTO transfers (from_id, to_id, amount) VALUES ($1, $2, $3)
RETURNING id, from_id, to_id, amount
`

type CreateTransferParams struct {
	FromID int64
	ToID   int64
	Amount string
}

func (q *Queries) CreateTransfer(ctx context.Context, arg CreateTransferParams) (Transfer, error) {
	row := q.db.QueryRowContext(ctx, createTransfer, arg.FromID, arg.ToID, arg.Amount)
	var i Transfer
	err := row.Scan(
		&i.ID,
		&i.FromID,
		&i.ToID,
		&i.Amount,
	)
	return i, err
}

const listAccounts = `-- name: ListAccounts :many
SELECT id, owner, balance, note, created_at FROM accounts ORDER BY id
`

func (q *Queries) ListAccounts(ctx context.Context) ([]Account, error) {
	rows, err := q.db.QueryContext(ctx, listAccounts)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []Account
	for rows.Next() {
		var i Account
		if err := rows.Scan(
			&i.ID,
			&i.Owner,
			&i.Balance,
			&i.Note,
			&i.CreatedAt,
		); err != nil {
			return nil, err
		}
		items = append(items, i)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return items, nil
}
