package jobs

import (
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/connbudget"
	"github.com/riverqueue/river"
)

// budgetSnooze is how long a job waits when its account had no connection
// slot left (connbudget): the account's own clients hold its share, and
// the job runs again once they free some, without using up an attempt.
const budgetSnooze = 5 * time.Second

// snoozeOverBudget returns the river snooze for an attempt that failed
// because the connection budget refused a connection, or nil.
func snoozeOverBudget(err error) error {
	if !connbudget.IsOver(err) {
		return nil
	}
	return river.JobSnooze(budgetSnooze)
}
