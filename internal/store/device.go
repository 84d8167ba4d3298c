package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/reauth/reauth"
)

// This file holds the queries of the device table: what the service was
// asked about and what the last sync saw, the device views operators read,
// and the sweep's pages.

// Device is a device the service has been asked about.
type Device struct {
	Kind      reauth.DeviceKind `json:"device_kind" db:"kind"`
	ID        string            `json:"device_id" db:"id"`
	OrgID     string            `json:"org_id" db:"org_id"`
	UserID    string            `json:"user_id" db:"user_id"`
	CreatedAt time.Time         `json:"created_at" db:"created_at"`
	UpdatedAt time.Time         `json:"updated_at" db:"updated_at"`
	GoneAt    *time.Time        `json:"gone_at,omitempty" db:"gone_at"`
	// What the last sync saw at Podero; null when Podero sent null or the
	// device was never synced. OwnerEmail is the device owner's email.
	Manufacturer     *string         `json:"manufacturer" db:"manufacturer"`
	Model            *string         `json:"model" db:"model"`
	LifecycleState   *string         `json:"lifecycle_state" db:"lifecycle_state"`
	LifecycleError   json.RawMessage `json:"lifecycle_error" db:"lifecycle_error"`
	ExternalDeviceID *string         `json:"external_device_id" db:"external_device_id"`
	OwnerEmail       *string         `json:"owner_email" db:"owner_email"`
}

// deviceColumns are a Device's columns (by its db tags).
const deviceColumns = `kind, id, org_id, user_id, created_at, updated_at, gone_at,
	manufacturer, model, lifecycle_state, lifecycle_error, external_device_id, owner_email`

// UpsertDevice records a device, refreshing its owner; a device Podero
// answers for again is no longer gone.
func UpsertDevice(ctx context.Context, db DB, kind reauth.DeviceKind, id, orgID, userID string) error {
	_, err := db.Exec(ctx, upsertDeviceSQL, kind, id, orgID, userID)
	return mapErr(err)
}

// upsertDeviceSQL is UpsertDevice's statement.
const upsertDeviceSQL = `
	INSERT INTO device (kind, id, org_id, user_id) VALUES ($1, $2, $3, $4)
	ON CONFLICT (kind, id) DO UPDATE
	SET org_id = excluded.org_id, user_id = excluded.user_id, updated_at = now(), gone_at = NULL`

// MarkDeviceGone records that Podero does not know the device (any more).
func MarkDeviceGone(ctx context.Context, db DB, kind reauth.DeviceKind, id, orgID, userID string) error {
	_, err := db.Exec(ctx, `
		INSERT INTO device (kind, id, org_id, user_id, gone_at) VALUES ($1, $2, $3, $4, now())
		ON CONFLICT (kind, id) DO UPDATE SET gone_at = now(), updated_at = now()`,
		kind, id, orgID, userID)
	return mapErr(err)
}

// The "needs a link" rule, written once, for a device row d. The sync's
// reading of Podero is the generated column needs_reauth
// (migrations/003_sync_sweep.sql): the device is not gone, and Podero said
// it is not authenticated or asks it to reauthenticate. A request may name a
// device no sync has seen authenticated yet, so a link is needed by
// needsLinkSQL, which adds those; the sweep asks only about the devices the
// sync saw lapsed (sweepLapsedSQL, which implies needsLinkSQL), through the
// partial index device_needs_reauth.
const (
	// loginLapsedSQL: the last sync (if any) did not see d authenticated,
	// or saw it asking to reauthenticate anyway. Its negation is "the
	// device is authenticated again".
	loginLapsedSQL = `(d.is_authenticated IS NOT TRUE OR d.needs_reauth)`
	// needsLinkSQL: d is not gone and its login lapsed.
	needsLinkSQL = `(d.gone_at IS NULL AND ` + loginLapsedSQL + `)`
	// sweepLapsedSQL: the sync saw d's login lapse (d is not gone).
	sweepLapsedSQL = `d.needs_reauth`
	// openSessionSQL selects d's open, unexpired session: a device with one
	// needs no other.
	openSessionSQL = `SELECT FROM auth_session s
	                  WHERE s.device_kind = d.kind AND s.device_id = d.id AND s.state = 'open' AND s.expires_at > now()`
)

// DeviceStillNeedsLink reports whether a device may still need a fresh
// link (needsLinkSQL): it is not gone, and the last sync (if any) did not
// see it authenticated or saw it asking to reauthenticate anyway.
func DeviceStillNeedsLink(ctx context.Context, db DB, kind reauth.DeviceKind, id string) (bool, error) {
	var needs bool
	err := db.QueryRow(ctx, `SELECT `+needsLinkSQL+`
		FROM device d WHERE d.kind = $1 AND d.id = $2`, kind, id).Scan(&needs)
	return needs, mapErr(err)
}

// DeviceOwnerEmail returns the email the last sync recorded for the owner of
// device kind/id, when that device belongs to user userID of organization
// orgID; "" when there is none (or no such device).
func DeviceOwnerEmail(ctx context.Context, db DB, kind reauth.DeviceKind, id, orgID, userID string) (string, error) {
	var email string
	err := db.QueryRow(ctx, `SELECT coalesce(owner_email, '') FROM device
		WHERE kind = $1 AND id = $2 AND org_id = $3 AND user_id = $4`, kind, id, orgID, userID).Scan(&email)
	if err = mapErr(err); errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return email, err
}

// DeviceView is a device with its sessions, notifications and jobs, newest first.
type DeviceView struct {
	Device
	Sessions      []Session      `json:"sessions"`
	Notifications []Notification `json:"notifications"`
	Jobs          []Job          `json:"jobs"`
}

// GetDeviceView returns everything known about one device. A device that
// has only requests waiting (no row yet) is returned with just its jobs.
func GetDeviceView(ctx context.Context, db DB, kind reauth.DeviceKind, id string) (DeviceView, error) {
	var v DeviceView
	var err error
	v.Device, err = queryOne[Device](ctx, db, `SELECT `+deviceColumns+` FROM device WHERE kind = $1 AND id = $2`, kind, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return v, err
	}
	found := err == nil

	v.Jobs, err = requestJobs(ctx, db, kind, id)
	if err != nil {
		return v, err
	}
	if !found {
		if len(v.Jobs) == 0 {
			return v, ErrNotFound
		}
		v.Kind, v.ID = kind, id
	}

	v.Sessions, err = queryAll[Session](ctx, db, `SELECT `+sessionColumns+sessionFrom+`
		WHERE s.device_kind = $1 AND s.device_id = $2
		ORDER BY s.created_at DESC, s.id DESC LIMIT 50`, kind, id)
	if err != nil {
		return v, err
	}
	v.Notifications, err = queryAll[Notification](ctx, db, `SELECT `+notificationColumns+`
		FROM notification n JOIN auth_session s ON s.id = n.session_id
		WHERE s.device_kind = $1 AND s.device_id = $2
		ORDER BY n.created_at DESC, n.id DESC LIMIT 100`, kind, id)
	return v, err
}

// DeviceDetail is everything known about one device: what the last sync saw,
// its sessions and their notifications, newest first. Its jobs are read
// through River (internal/ops), by the IDs DeviceKindJobIDs finds.
type DeviceDetail struct {
	Device
	DeviceSync
	// Known is false for a device that has only requests waiting (no row yet).
	Known         bool           `json:"known"`
	Sessions      []Session      `json:"sessions"`
	Notifications []Notification `json:"notifications"`
}

// DeviceSync is what the last sync saw of a device, beyond its Device
// fields; NeedsReauth is the database's reading of it.
type DeviceSync struct {
	IsAuthenticated  *bool           `json:"is_authenticated" db:"is_authenticated"`
	ActionNeeded     *bool           `json:"action_needed" db:"action_needed"`
	Actions          json.RawMessage `json:"actions" db:"actions"`
	ConnectionStatus *string         `json:"connection_status" db:"connection_status"`
	SyncedAt         *time.Time      `json:"synced_at" db:"synced_at"`
	NeedsReauth      bool            `json:"needs_reauth" db:"needs_reauth"`
}

// GetDeviceDetail returns the device kind/id with its sessions and
// notifications. ErrNotFound when there is neither a device row nor a
// request for it.
func GetDeviceDetail(ctx context.Context, db DB, kind reauth.DeviceKind, id string) (DeviceDetail, error) {
	v, err := GetDeviceView(ctx, db, kind, id)
	if err != nil {
		return DeviceDetail{}, err
	}
	d := DeviceDetail{Device: v.Device, Sessions: v.Sessions, Notifications: v.Notifications}
	d.DeviceSync, err = queryOne[DeviceSync](ctx, db, `SELECT is_authenticated, action_needed, actions,
			connection_status, synced_at, needs_reauth
		FROM device WHERE kind = $1 AND id = $2`, kind, id)
	switch {
	case err == nil:
		d.Known = true
	case errors.Is(err, ErrNotFound):
		d.Actions = json.RawMessage("[]")
	default:
		return d, err
	}
	if d.Sessions == nil {
		d.Sessions = []Session{}
	}
	if d.Notifications == nil {
		d.Notifications = []Notification{}
	}
	return d, nil
}

// SyncedDevice is what Podero's device list says about one device.
type SyncedDevice struct {
	Kind             reauth.DeviceKind
	ID, OrgID        string
	UserID           string
	IsAuthenticated  *bool
	ActionNeeded     *bool
	Actions          json.RawMessage // as Podero sent it; nil for none
	ConnectionStatus string
	Deleted          bool // Podero lists it with deleted_at set
	// Manufacturer, Model, LifecycleState, ExternalDeviceID and OwnerEmail
	// are "" when Podero sent null (stored as NULL); LifecycleError is nil
	// then.
	Manufacturer     string
	Model            string
	LifecycleState   string
	LifecycleError   json.RawMessage
	ExternalDeviceID string
	OwnerEmail       string
}

// RecordSyncedDevice upserts a listed device and reports whether it is
// authenticated again (and needs no reauthentication): the user fixed it
// without our link, and its open session is completed elsewhere
// (session.CompletedElsewhere). A deleted device is marked gone, which
// closes its open session (see MarkDeviceGone).
func RecordSyncedDevice(ctx context.Context, db DB, d SyncedDevice) (authenticated bool, err error) {
	actions := d.Actions
	if len(actions) == 0 || string(actions) == "null" {
		actions = json.RawMessage("[]")
	}
	var lifecycleErr []byte // nil: NULL
	if len(d.LifecycleError) > 0 && string(d.LifecycleError) != "null" {
		lifecycleErr = d.LifecycleError
	}
	err = db.QueryRow(ctx, `
		INSERT INTO device AS d (kind, id, org_id, user_id, is_authenticated, action_needed, actions,
			connection_status, synced_at, gone_at,
			manufacturer, model, lifecycle_state, lifecycle_error, external_device_id, owner_email)
		VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''), now(), CASE WHEN $9 THEN now() END,
			nullif($10, ''), nullif($11, ''), nullif($12, ''), $13::jsonb, nullif($14, ''), nullif($15, ''))
		ON CONFLICT (kind, id) DO UPDATE SET
			org_id = excluded.org_id, user_id = excluded.user_id,
			is_authenticated = excluded.is_authenticated, action_needed = excluded.action_needed,
			actions = excluded.actions, connection_status = excluded.connection_status,
			manufacturer = excluded.manufacturer, model = excluded.model,
			lifecycle_state = excluded.lifecycle_state, lifecycle_error = excluded.lifecycle_error,
			external_device_id = excluded.external_device_id, owner_email = excluded.owner_email,
			synced_at = now(), updated_at = now(),
			gone_at = CASE WHEN $9 THEN coalesce(d.gone_at, now()) END
		RETURNING NOT `+loginLapsedSQL,
		d.Kind, d.ID, d.OrgID, d.UserID, d.IsAuthenticated, d.ActionNeeded, actions, d.ConnectionStatus, d.Deleted,
		d.Manufacturer, d.Model, d.LifecycleState, lifecycleErr, d.ExternalDeviceID, d.OwnerEmail).Scan(&authenticated)
	return authenticated, mapErr(err)
}

// MarkMissingGone marks the user's devices of kind that Podero no longer
// lists as gone, and returns how many.
func MarkMissingGone(ctx context.Context, db DB, orgID, userID string, kind reauth.DeviceKind, listed []string) (int64, error) {
	tag, err := db.Exec(ctx, `
		UPDATE device SET gone_at = now(), updated_at = now()
		WHERE org_id = $1 AND user_id = $2 AND kind = $3 AND gone_at IS NULL
		  AND NOT (id = ANY (coalesce($4::uuid[], '{}')))`,
		orgID, userID, kind, listed)
	if err != nil {
		return 0, mapErr(err)
	}
	return tag.RowsAffected(), nil
}

// SweepStillNeeded reports whether a device the sweep queued still needs a
// session: it still needs reauthentication (by the last sync) and has no
// open, unexpired session.
func SweepStillNeeded(ctx context.Context, db DB, kind reauth.DeviceKind, id string) (bool, error) {
	var needed bool
	err := db.QueryRow(ctx, `
		SELECT `+sweepLapsedSQL+` AND NOT EXISTS (`+openSessionSQL+`)
		FROM device d WHERE d.kind = $1 AND d.id = $2`, kind, id).Scan(&needed)
	if err = mapErr(err); errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return needed, err
}

// DeviceKey orders devices for keyset paging; the zero key is before all.
type DeviceKey struct {
	Kind reauth.DeviceKind
	ID   string
}

// SweepCandidate is a device the sweep should request a session for.
type SweepCandidate struct {
	DeviceKey
	OrgID, UserID string
}

// SweepPage returns up to limit devices after key, in key order, that need
// reauthentication, have no open unexpired session, no request finished and
// no message sent within cooldown, and fewer than maxPerWeek messages in the
// last seven days. It walks the partial index
// device_needs_reauth, so a page costs the same wherever it starts.
//
// The rows stay share-locked until db's transaction ends: enqueue the page in
// that transaction. A worker storing a session for one of them (which
// updates the device row) then either committed before the page was read,
// and the device is left out, or waits until the page's jobs are in, while
// its own job still counts for River's uniqueness.
func SweepPage(ctx context.Context, db DB, after DeviceKey, cooldown time.Duration, maxPerWeek, limit int) (page []SweepCandidate, last DeviceKey, err error) {
	if after.ID == "" {
		after.ID = "00000000-0000-0000-0000-000000000000"
	}
	rows, err := db.Query(ctx, SweepPageSQL, after.Kind, after.ID, cooldown.Seconds(), maxPerWeek, limit)
	if err != nil {
		return nil, after, mapErr(err)
	}
	page = make([]SweepCandidate, 0, limit)
	kinds, ids := make([]string, 0, limit), make([]string, 0, limit)
	for rows.Next() {
		var c SweepCandidate
		if err := rows.Scan(&c.Kind, &c.ID, &c.OrgID, &c.UserID); err != nil {
			rows.Close()
			return nil, after, mapErr(err)
		}
		page = append(page, c)
		kinds, ids = append(kinds, string(c.Kind)), append(ids, c.ID)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(page) == 0 {
		return nil, after, mapErr(err)
	}
	last = page[len(page)-1].DeviceKey

	// A row the query waited for (a session being stored) was re-checked
	// with the statement's old snapshot; now that the rows are locked, a new
	// statement sees any session committed meanwhile.
	rows, err = db.Query(ctx, `SELECT d.kind, d.id::text FROM unnest($1::text[], $2::uuid[]) AS d (kind, id)
		WHERE EXISTS (`+openSessionSQL+`)`,
		kinds, ids)
	if err != nil {
		return nil, after, mapErr(err)
	}
	open := map[DeviceKey]bool{}
	for rows.Next() {
		var k DeviceKey
		if err := rows.Scan(&k.Kind, &k.ID); err != nil {
			rows.Close()
			return nil, after, mapErr(err)
		}
		open[k] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, after, mapErr(err)
	}
	kept := page[:0]
	for _, c := range page {
		if !open[c.DeviceKey] {
			kept = append(kept, c)
		}
	}
	return kept, last, nil
}

// SweepPageSQL is SweepPage's query (exported for EXPLAIN in tests).
const SweepPageSQL = `
	SELECT d.kind, d.id, d.org_id, d.user_id
	FROM device d
	WHERE ` + sweepLapsedSQL + ` AND (d.kind, d.id) > ($1, $2::uuid)
	  AND NOT EXISTS (` + openSessionSQL + `)
	  AND NOT EXISTS (` + requestFinishedWithinSQL + `)
	  AND NOT EXISTS (SELECT FROM auth_session s JOIN notification n ON n.session_id = s.id
	                  WHERE s.device_kind = d.kind AND s.device_id = d.id
	                    AND n.sent_at > now() - make_interval(secs => $3::float8))
	  AND (SELECT count(*) FROM auth_session s JOIN notification n ON n.session_id = s.id
	       WHERE s.device_kind = d.kind AND s.device_id = d.id AND n.sent_at > now() - interval '7 days') < $4
	ORDER BY d.kind, d.id
	LIMIT $5
	FOR SHARE OF d`
