package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reauth/reauth"
)

// This file holds the read queries behind the operator commands (reauth
// jobs, devices, sessions, stats); queue counts are OpsQueues in opspage.go.

// DeviceJob is a river_job row as operators list it.
type DeviceJob struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	Queue       string          `json:"queue"`
	State       string          `json:"state"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	CreatedAt   time.Time       `json:"created_at"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	FinalizedAt *time.Time      `json:"finalized_at"`
	LastError   string          `json:"last_error,omitempty"`
	Args        json.RawMessage `json:"args"`
}

const deviceJobColumns = `j.id, j.kind, j.queue, j.state::text, j.attempt, j.max_attempts, j.created_at,
	j.scheduled_at, j.finalized_at, coalesce(j.errors[array_upper(j.errors, 1)] ->> 'error', ''), j.args`

func scanDeviceJob(r pgx.CollectableRow) (DeviceJob, error) {
	var j DeviceJob
	var args []byte
	err := r.Scan(&j.ID, &j.Kind, &j.Queue, &j.State, &j.Attempt, &j.MaxAttempts, &j.CreatedAt,
		&j.ScheduledAt, &j.FinalizedAt, &j.LastError, &args)
	j.Args = args
	return j, err
}

// DeviceDetail is everything known about one device: what the last sync saw,
// its sessions, their notifications, and the jobs that requested and
// delivered them, newest first.
type DeviceDetail struct {
	Device
	IsAuthenticated  *bool           `json:"is_authenticated"`
	ActionNeeded     *bool           `json:"action_needed"`
	Actions          json.RawMessage `json:"actions"`
	ConnectionStatus *string         `json:"connection_status"`
	SyncedAt         *time.Time      `json:"synced_at"`
	NeedsReauth      bool            `json:"needs_reauth"`
	// Known is false for a device that has only requests waiting (no row yet).
	Known         bool           `json:"known"`
	Sessions      []Session      `json:"sessions"`
	Notifications []Notification `json:"notifications"`
	Jobs          []DeviceJob    `json:"jobs"`
}

// GetDeviceDetail returns the device kind/id with its sessions, notifications
// and jobs: its reauth_device jobs and the reauth_notify jobs of its
// sessions (at most 100). ErrNotFound when there is neither a device row
// nor a job for it.
func GetDeviceDetail(ctx context.Context, db DB, kind reauth.DeviceKind, id string) (DeviceDetail, error) {
	v, err := GetDeviceView(ctx, db, kind, id)
	if err != nil {
		return DeviceDetail{}, err
	}
	d := DeviceDetail{Device: v.Device, Sessions: v.Sessions, Notifications: v.Notifications, Actions: json.RawMessage("[]")}
	var actions []byte
	err = db.QueryRow(ctx, `SELECT is_authenticated, action_needed, actions, connection_status, synced_at, needs_reauth
		FROM device WHERE kind = $1 AND id = $2`, kind, id).Scan(
		&d.IsAuthenticated, &d.ActionNeeded, &actions, &d.ConnectionStatus, &d.SyncedAt, &d.NeedsReauth)
	switch err = mapErr(err); {
	case err == nil:
		d.Known = true
		d.Actions = actions
	case !errors.Is(err, ErrNotFound):
		return d, err
	}
	ids, err := deviceJobIDs(ctx, db, []string{string(kind)}, id, 100)
	if err != nil {
		return d, err
	}
	rows, err := db.Query(ctx, `SELECT `+deviceJobColumns+` FROM river_job j
		WHERE j.id = ANY ($1) ORDER BY j.id DESC`, ids)
	if err != nil {
		return d, mapErr(err)
	}
	d.Jobs, err = pgx.CollectRows(rows, scanDeviceJob)
	if d.Sessions == nil {
		d.Sessions = []Session{}
	}
	if d.Notifications == nil {
		d.Notifications = []Notification{}
	}
	if d.Jobs == nil {
		d.Jobs = []DeviceJob{}
	}
	return d, mapErr(err)
}

// DeviceJobIDs returns the IDs of the newest jobs (at most limit) of the
// device with Podero ID deviceID, whatever its kind: its reauth_device jobs
// and the reauth_notify jobs of its newest 1000 sessions.
func DeviceJobIDs(ctx context.Context, db DB, deviceID string, limit int) ([]int64, error) {
	kinds := make([]string, len(reauth.DeviceKinds))
	for i, k := range reauth.DeviceKinds {
		kinds[i] = string(k)
	}
	return deviceJobIDs(ctx, db, kinds, deviceID, limit)
}

func deviceJobIDs(ctx context.Context, db DB, kinds []string, deviceID string, limit int) ([]int64, error) {
	rows, err := db.Query(ctx, `SELECT id FROM auth_session WHERE device_kind = ANY ($1) AND device_id = $2::uuid
		ORDER BY id DESC LIMIT 1000`, kinds, deviceID)
	if err != nil {
		return nil, mapErr(err)
	}
	sessions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, mapErr(err)
	}
	rows, err = db.Query(ctx, deviceJobIDsSQL(sessions), deviceID, kinds, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids, mapErr(err)
}

// deviceJobIDsSQL finds a device's jobs ($1 its ID, $2 its kinds, $3 the
// limit) through indexes: its requests through river_job_reauth_device, the
// messages of the given sessions through River's GIN index on args. The
// session IDs are written into the query as constants, so that Postgres
// estimates each containment test from the column's statistics (a handful
// of rows) and uses the GIN index, instead of guessing 1% of river_job for a
// value from a join and reading every reauth_notify job.
func deviceJobIDsSQL(sessions []int64) string {
	var b strings.Builder
	b.WriteString(`SELECT id FROM river_job
		WHERE kind = 'reauth_device' AND args ->> 'device_id' = $1 AND args ->> 'device_kind' = ANY ($2)`)
	if len(sessions) > 0 {
		b.WriteString("\nUNION ALL\nSELECT id FROM river_job WHERE kind = 'reauth_notify' AND (")
		for i, id := range sessions {
			if i > 0 {
				b.WriteString(" OR ")
			}
			fmt.Fprintf(&b, `args @> '{"session_id": %d}'`, id)
		}
		b.WriteString(")")
	}
	b.WriteString("\nORDER BY id DESC LIMIT $3")
	return b.String()
}

// SessionListItem is a session with its device's owner and its latest message.
type SessionListItem struct {
	Session
	MessageState  string     `json:"message_state,omitempty"`
	MessageSentAt *time.Time `json:"message_sent_at,omitempty"`
}

// SessionListFilter selects sessions for ListSessions.
type SessionListFilter struct {
	State    string // "" for any
	BeforeID int64  // 0 for the newest; else only sessions with a smaller id
	Limit    int
}

// ListSessions returns sessions newest first.
func ListSessions(ctx context.Context, db DB, f SessionListFilter) ([]SessionListItem, error) {
	rows, err := db.Query(ctx, `SELECT `+sessionColumns+`, coalesce(n.state, ''), n.sent_at
		FROM auth_session s JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id
		LEFT JOIN LATERAL (SELECT n.state, n.sent_at FROM notification n WHERE n.session_id = s.id
			ORDER BY n.id DESC LIMIT 1) n ON true
		WHERE ($1 = '' OR s.state = $1) AND ($2 = 0 OR s.id < $2)
		ORDER BY s.id DESC LIMIT $3`, f.State, f.BeforeID, f.Limit)
	if err != nil {
		return nil, mapErr(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SessionListItem, error) {
		var o SessionListItem
		s := &o.Session
		err := r.Scan(append(s.dest(), &o.MessageState, &o.MessageSentAt)...)
		return o, err
	})
	return list, mapErr(err)
}

// OrgFunnel is the reauthentication funnel of one org and device kind.
type OrgFunnel struct {
	OrgID      string `json:"org_id"`
	DeviceKind string `json:"device_kind"`
	// Requested counts reauth_device jobs created in the window.
	Requested int64 `json:"requested"`
	// LinkCreated counts sessions created in the window; the counts after it
	// are of those sessions.
	LinkCreated int64 `json:"link_created"`
	// Sent: at least one message was sent.
	Sent int64 `json:"sent"`
	// Opened: the link was clicked.
	Opened int64 `json:"opened"`
	// Completed: the login was completed, through the link or elsewhere.
	Completed int64 `json:"completed"`
}

// FunnelByOrg returns the funnel per org and device kind since since, ordered
// by org and kind.
func FunnelByOrg(ctx context.Context, db DB, since time.Time) ([]OrgFunnel, error) {
	rows, err := db.Query(ctx, `
		WITH req AS (
			SELECT lower(coalesce(args ->> 'org_id', '')) AS org_id, coalesce(args ->> 'device_kind', '') AS kind,
				count(*) AS n
			FROM river_job
			WHERE kind = 'reauth_device' AND created_at >= $1
			GROUP BY 1, 2
		), ses AS (
			SELECT d.org_id::text AS org_id, s.device_kind AS kind, count(*) AS created,
				count(*) FILTER (WHERE m.sent) AS sent,
				count(*) FILTER (WHERE s.opened_at IS NOT NULL) AS opened,
				count(*) FILTER (WHERE s.state IN ('completed', 'completed_elsewhere')) AS completed
			FROM auth_session s
			JOIN device d ON d.kind = s.device_kind AND d.id = s.device_id
			CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM notification n
				WHERE n.session_id = s.id AND n.state = 'sent') AS sent) m
			WHERE s.created_at >= $1
			GROUP BY 1, 2
		)
		SELECT coalesce(req.org_id, ses.org_id), coalesce(req.kind, ses.kind), coalesce(req.n, 0),
			coalesce(ses.created, 0), coalesce(ses.sent, 0), coalesce(ses.opened, 0), coalesce(ses.completed, 0)
		FROM req FULL JOIN ses ON ses.org_id = req.org_id AND ses.kind = req.kind
		ORDER BY 1, 2`, since)
	if err != nil {
		return nil, mapErr(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OrgFunnel, error) {
		var f OrgFunnel
		return f, r.Scan(&f.OrgID, &f.DeviceKind, &f.Requested, &f.LinkCreated, &f.Sent, &f.Opened, &f.Completed)
	})
	return list, mapErr(err)
}
