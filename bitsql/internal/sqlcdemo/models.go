package sqlcdemo

import (
	"database/sql"
	"time"
)

type Account struct {
	ID        int64
	Owner     string
	Balance   string
	Note      sql.NullString
	CreatedAt time.Time
}

type Transfer struct {
	ID     int64
	FromID int64
	ToID   int64
	Amount string
}
