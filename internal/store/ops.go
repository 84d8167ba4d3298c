package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reauth/reauth"
)

// This file holds the read queries behind the operator commands (reauth
// jobs, devices, sessions, stats); queue counts are OpsQueues in opspage.go.

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
	if d.Jobs, err = jobsByID(ctx, db, ids); err != nil {
		return d, err
	}
	if d.Sessions == nil {
		d.Sessions = []Session{}
	}
	if d.Notifications == nil {
		d.Notifications = []Notification{}
	}
	if d.Jobs == nil {
		d.Jobs = []DeviceJob{}
	}
	return d, nil
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
		WITH req AS (`+requestsSinceSQL+`), ses AS (
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
