// Package ops is the operators' core: every read and action that the
// operator commands (reauth jobs, devices, sessions, queues, stats) and the
// /ops page share, written once. It returns typed results; the command line
// and the page only render them.
//
// River's rows are changed only through River's client (JobRetryTx,
// JobCancelTx, QueuePause, QueueResume) and listed with JobList; the reads
// of the app's tables and River's are in internal/store.
package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
)

// Ops runs the operators' reads and actions on one database.
type Ops struct {
	Pool *pgxpool.Pool
	// River lists, retries and cancels jobs and pauses queues; an
	// insert-only client (one that works no queues) will do.
	River *river.Client[pgx.Tx]
	// RateLimit is PODERO_RATE_LIMIT (0: none), SyncShare SYNC_RATE_SHARE
	// and SyncInterval SYNC_INTERVAL, for the budget and the sync status.
	RateLimit    float64
	SyncShare    float64
	SyncInterval time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

func (o *Ops) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// ErrNotFound: no such job, queue, device or session.
var ErrNotFound = errors.New("not found")

// mapNotFound turns River's and the store's not-found errors into ErrNotFound.
func mapNotFound(err error) error {
	if errors.Is(err, rivertype.ErrNotFound) || errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// FormatTime shows a time.Time or *time.Time in UTC to the second, "-"
// when it is zero or nil: the one time format of the CLI's tables and the
// ops page.
func FormatTime(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	}
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// Queue is one River queue with its jobs by state.
type Queue struct {
	store.OpsQueue
	Paused bool `json:"paused"`
}

// Queues returns every queue River knows or that has jobs, by name.
func (o *Ops) Queues(ctx context.Context) ([]Queue, error) {
	qs, err := store.OpsQueues(ctx, o.Pool)
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	out := make([]Queue, 0, len(qs))
	for _, q := range qs {
		out = append(out, Queue{OpsQueue: q, Paused: q.PausedAt != nil})
	}
	return out, nil
}

// PauseQueue stops every worker, in every process, from fetching new jobs
// from queue name ("*": every queue); running jobs finish. ErrNotFound when
// River knows no such queue (it knows one once a worker has started on it).
func (o *Ops) PauseQueue(ctx context.Context, name string) error {
	if err := o.River.QueuePause(ctx, name, nil); err != nil {
		return fmt.Errorf("pause queue %q: %w", name, mapNotFound(err))
	}
	return nil
}

// ResumeQueue lets workers fetch from queue name ("*": every queue) again.
func (o *Ops) ResumeQueue(ctx context.Context, name string) error {
	if err := o.River.QueueResume(ctx, name, nil); err != nil {
		return fmt.Errorf("resume queue %q: %w", name, mapNotFound(err))
	}
	return nil
}

// ParseDevice checks a device's kind and Podero ID, as an operator types
// them, and returns them with the ID in lower case.
func ParseDevice(kind, id string) (reauth.DeviceKind, string, error) {
	k, id := reauth.DeviceKind(kind), strings.ToLower(strings.TrimSpace(id))
	if !k.Valid() {
		return "", "", fmt.Errorf("the device kind must be inverter, electric_vehicle or wallbox, not %q", kind)
	}
	if !reauth.IsUUID(id) {
		return "", "", fmt.Errorf("the device ID must be a UUID, not %q", id)
	}
	return k, id, nil
}

// Device is everything known about one device: what the last sync saw,
// its sessions, their messages, and its jobs (its requests and the
// messages of its sessions), newest first.
type Device struct {
	store.DeviceDetail
	Jobs []Job `json:"jobs"`
}

// MaxDeviceJobs is how many of a device's newest jobs Device returns.
const MaxDeviceJobs = 100

// Device returns the device kind/id (see ParseDevice); ErrNotFound when
// there is neither a device row nor a request for it.
func (o *Ops) Device(ctx context.Context, kind reauth.DeviceKind, id string) (Device, error) {
	d, err := store.GetDeviceDetail(ctx, o.Pool, kind, id)
	if err != nil {
		return Device{}, mapNotFound(err)
	}
	ids, err := store.DeviceKindJobIDs(ctx, o.Pool, kind, id, MaxDeviceJobs)
	if err != nil {
		return Device{}, fmt.Errorf("device jobs: %w", err)
	}
	v := Device{DeviceDetail: d, Jobs: []Job{}}
	if len(ids) == 0 {
		return v, nil
	}
	res, err := o.River.JobList(ctx, river.NewJobListParams().IDs(ids...).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(len(ids)))
	if err != nil {
		return Device{}, fmt.Errorf("device jobs: %w", err)
	}
	for _, j := range res.Jobs {
		v.Jobs = append(v.Jobs, NewJob(j))
	}
	return v, nil
}

// SessionStates are the states an auth_session can be in.
var SessionStates = []string{
	store.SessionOpen, store.SessionCompleted, store.SessionCancelled, store.SessionSuperseded,
	store.SessionCompletedElsewhere, store.SessionDeviceGone, store.SessionUnverified,
}

// SessionFilter chooses sessions, newest first.
type SessionFilter struct {
	State string // one of SessionStates; "" for any
	After int64  // only sessions older than this one (the next page); 0 for the newest
	Limit int    // 1 to MaxLimit
}

// MaxLimit bounds a page of jobs or sessions.
const MaxLimit = 10000

// Check says what is wrong with the filter, if anything.
func (f SessionFilter) Check() error {
	switch {
	case f.State != "" && !slices.Contains(SessionStates, f.State):
		return fmt.Errorf("the session state must be one of %s", strings.Join(SessionStates, ", "))
	case f.Limit < 1 || f.Limit > MaxLimit:
		return fmt.Errorf("the limit must be between 1 and %d", MaxLimit)
	case f.After < 0:
		return errors.New("after must be a session ID")
	}
	return nil
}

// SessionPage is a page of sessions; NextAfter, when set, is the After of
// the next page.
type SessionPage struct {
	Sessions  []store.SessionListItem `json:"sessions"`
	NextAfter *int64                  `json:"next_after"`
}

// Sessions lists the sessions f chooses, with their device and latest
// message.
func (o *Ops) Sessions(ctx context.Context, f SessionFilter) (SessionPage, error) {
	if err := f.Check(); err != nil {
		return SessionPage{}, err
	}
	// One more than asked tells whether there is a next page.
	list, err := store.ListSessions(ctx, o.Pool, store.SessionListFilter{State: f.State, BeforeID: f.After, Limit: f.Limit + 1})
	if err != nil {
		return SessionPage{}, fmt.Errorf("list sessions: %w", err)
	}
	p := SessionPage{Sessions: list}
	if len(list) > f.Limit {
		p.Sessions = list[:f.Limit]
		next := p.Sessions[f.Limit-1].ID
		p.NextAfter = &next
	}
	if p.Sessions == nil {
		p.Sessions = []store.SessionListItem{}
	}
	return p, nil
}
