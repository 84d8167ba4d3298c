package store

import (
	"context"
	"math"
	"time"

	"github.com/reauth/reauth"
)

// This file holds the queries of sync_user and sync_org: the users lists
// the sync records, which users are due a sync, and how far it is behind.

// ListedUser is one user of an organization's users list, as the sync
// records it.
type ListedUser struct {
	UserID         string // a UUID, lower case
	Email          string // "" for none (stored as NULL)
	ExternalUserID string // "" for none
	Country        string // as Podero sends it; "" for none
	// The user's devices of each kind; nil: unknown, so the sync lists it.
	NumInverters, NumElectricVehicles, NumWallboxes *int
}

// UserListing records one organization's users list into sync_user as it
// streams in, batch by batch, writing only the rows that changed, and at
// the end marks the users it did not list gone. It keeps the ids it saw in
// a temporary table of its connection: give it one connection (a
// *pgxpool.Conn, a *pgx.Conn), not a pool, and Close it.
type UserListing struct {
	db      DB
	org     string
	started time.Time // the database's clock when the listing began
	users   int
	changed int64 // rows written: new users, changed ones, returning ones
	gone    int64 // devices marked gone because their kind's count became 0
}

// BeginUserListing starts recording organization orgID's users list on the
// connection conn.
func BeginUserListing(ctx context.Context, conn DB, orgID string) (*UserListing, error) {
	l := &UserListing{db: conn, org: orgID}
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS reauth_sync_listed (user_id uuid PRIMARY KEY)`); err != nil {
		return nil, mapErr(err)
	}
	if _, err := conn.Exec(ctx, `TRUNCATE pg_temp.reauth_sync_listed`); err != nil {
		return nil, mapErr(err)
	}
	if err := conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&l.started); err != nil {
		return nil, mapErr(err)
	}
	return l, nil
}

// Started is when the listing began, on the database's clock.
func (l *UserListing) Started() time.Time { return l.started }

// Add records a batch of listed users: new and changed ones are written
// (a user listed again after it had gone is back), unchanged ones only
// noted as seen. A user whose count of a kind became 0 has its devices of
// that kind marked gone, unless they were seen after the listing began (a
// request's device, newer than the count).
func (l *UserListing) Add(ctx context.Context, users []ListedUser) error {
	if len(users) == 0 {
		return nil
	}
	n := len(users)
	ids, emails, exts, countries := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	inv, ev, wb := make([]*int, n), make([]*int, n), make([]*int, n)
	for i, u := range users {
		ids[i], emails[i], exts[i], countries[i] = u.UserID, u.Email, u.ExternalUserID, u.Country
		inv[i], ev[i], wb[i] = u.NumInverters, u.NumElectricVehicles, u.NumWallboxes
	}
	var changed, gone int64
	err := l.db.QueryRow(ctx, addListedSQL, l.org, ids, emails, exts, inv, ev, wb, l.started, countries).Scan(&changed, &gone)
	if err != nil {
		return mapErr(err)
	}
	l.users += n
	l.changed += changed
	l.gone += gone
	return nil
}

const addListedSQL = `
	WITH b AS (
		SELECT DISTINCT ON (user_id) user_id, nullif(email, '') AS email, nullif(external_user_id, '') AS external_user_id,
			num_inverters, num_electric_vehicles, num_wallboxes, nullif(country, '') AS country
		FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[], $9::text[])
			AS b (user_id, email, external_user_id, num_inverters, num_electric_vehicles, num_wallboxes, country)
		ORDER BY user_id
	), seen AS (
		INSERT INTO pg_temp.reauth_sync_listed (user_id) SELECT user_id FROM b ON CONFLICT DO NOTHING
	), changed AS (
		SELECT b.* FROM b LEFT JOIN sync_user s ON s.org_id = $1 AND s.user_id = b.user_id
		WHERE s.user_id IS NULL OR s.gone_at IS NOT NULL
		   OR (s.email, s.external_user_id, s.num_inverters, s.num_electric_vehicles, s.num_wallboxes, s.country)
		      IS DISTINCT FROM (b.email, b.external_user_id, b.num_inverters, b.num_electric_vehicles, b.num_wallboxes, b.country)
	), up AS (
		INSERT INTO sync_user (org_id, user_id, email, external_user_id, num_inverters, num_electric_vehicles,
			num_wallboxes, country, created_at, changed_at)
		SELECT $1, user_id, email, external_user_id, num_inverters, num_electric_vehicles, num_wallboxes, country, $8, $8
		FROM changed
		ON CONFLICT (org_id, user_id) DO UPDATE SET
			email = excluded.email, external_user_id = excluded.external_user_id,
			num_inverters = excluded.num_inverters, num_electric_vehicles = excluded.num_electric_vehicles,
			num_wallboxes = excluded.num_wallboxes, country = excluded.country, changed_at = excluded.changed_at, gone_at = NULL
		RETURNING user_id, num_inverters, num_electric_vehicles, num_wallboxes
	), gone AS (
		UPDATE device d SET gone_at = now(), updated_at = now()
		FROM up
		WHERE d.org_id = $1 AND d.user_id = up.user_id AND d.gone_at IS NULL AND d.updated_at < $8
		  AND ((d.kind = 'inverter' AND up.num_inverters = 0)
		    OR (d.kind = 'electric_vehicle' AND up.num_electric_vehicles = 0)
		    OR (d.kind = 'wallbox' AND up.num_wallboxes = 0))
		RETURNING 1
	)
	SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM gone)`

// ListingResult is what a complete users list changed.
type ListingResult struct {
	Users        int   // users listed
	Changed      int64 // sync_user rows written (new, changed or back)
	UsersGone    int64 // users no longer listed, marked gone
	DevicesGone  int64 // their devices, and devices of kinds whose count became 0
	Took         time.Duration
	EmptyIgnored bool // the list was empty: not taken to mean every user left
}

// Finish ends a complete listing: the organization's users it did not list
// are gone, and so are their devices (unless seen after the listing began);
// sync_org records the listing. An empty list marks nothing gone: it is not
// trusted to mean that every user left.
func (l *UserListing) Finish(ctx context.Context) (ListingResult, error) {
	res := ListingResult{Users: l.users, Changed: l.changed, DevicesGone: l.gone}
	if l.users == 0 {
		res.EmptyIgnored = true
		return res, nil
	}
	if _, err := l.db.Exec(ctx, `ANALYZE pg_temp.reauth_sync_listed`); err != nil {
		return res, mapErr(err)
	}
	var took float64
	var devices int64
	err := l.db.QueryRow(ctx, `
		WITH users AS (
			UPDATE sync_user s SET gone_at = now(), queued_job = NULL
			WHERE s.org_id = $1 AND s.gone_at IS NULL
			  AND NOT EXISTS (SELECT FROM pg_temp.reauth_sync_listed l WHERE l.user_id = s.user_id)
			RETURNING 1
		), devices AS (
			UPDATE device d SET gone_at = now(), updated_at = now()
			WHERE d.org_id = $1 AND d.gone_at IS NULL AND d.updated_at < $2
			  AND NOT EXISTS (SELECT FROM pg_temp.reauth_sync_listed l WHERE l.user_id = d.user_id)
			RETURNING 1
		), org AS (
			INSERT INTO sync_org (org_id, listed_at, users, took) VALUES ($1, $2, $3, clock_timestamp() - $2)
			ON CONFLICT (org_id) DO UPDATE SET listed_at = excluded.listed_at, users = excluded.users, took = excluded.took
		)
		SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM devices), extract(epoch FROM clock_timestamp() - $2)::float8`,
		l.org, l.started, l.users).Scan(&res.UsersGone, &devices, &took)
	if err != nil {
		return res, mapErr(err)
	}
	res.DevicesGone += devices
	res.Took = time.Duration(took * float64(time.Second))
	return res, nil
}

// Close drops the listing's temporary table. It runs even when ctx is done.
func (l *UserListing) Close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = l.db.Exec(ctx, `DROP TABLE IF EXISTS pg_temp.reauth_sync_listed`)
}

// SyncKinds are the device kinds a user's sync lists: the ones whose count
// is unknown or above 0, in reauth.DeviceKinds order.
func SyncKinds(inverters, electricVehicles, wallboxes *int) []reauth.DeviceKind {
	var kinds []reauth.DeviceKind
	for i, n := range []*int{inverters, electricVehicles, wallboxes} {
		if n == nil || *n > 0 {
			kinds = append(kinds, []reauth.DeviceKind{reauth.Inverter, reauth.ElectricVehicle, reauth.Wallbox}[i])
		}
	}
	return kinds
}

// DueSyncUser is a user whose devices are due to be listed.
type DueSyncUser struct {
	OrgID, UserID string
	Kinds         []reauth.DeviceKind // what to list; never empty
}

// SyncPick is what one dispatcher tick may queue.
type SyncPick struct {
	// Interval is SYNC_INTERVAL: a user synced within it is not due.
	Interval time.Duration
	// Calls is the most device-list calls a tick queues: the sync's part of
	// the rate over one tick.
	Calls int
	// Tick, when above 0, spreads the pass over Interval: the users due
	// get at most SyncTickQuota(pass calls, Tick, Interval) calls a tick
	// (within Calls), except the overdue ones (see SyncOverdue), who may
	// take all of Calls. 0: every user due goes at Calls (`reauth sync
	// --now`).
	Tick time.Duration
}

// SyncPicked is what PickSyncUsers picked.
type SyncPicked struct {
	Due []DueSyncUser // overdue users first, then the others; oldest sync first in each
	// Pending is the device-list calls of the jobs still pending.
	Pending int
	// Spread only: PassCalls is the calls a full pass takes (every listed
	// user's kinds), Quota the calls a tick's spread allows
	// (SyncTickQuota, within Calls), and Overdue the users of Due that
	// were overdue.
	PassCalls int64
	Quota     int
	Overdue   int
}

// SyncOverdue is how long after its last sync (its first listing, if
// never synced) a user is overdue, for an interval: one interval beyond
// due. An overdue user is queued at the whole rate cap, not spread.
func SyncOverdue(interval time.Duration) time.Duration { return 2 * interval }

// SyncTickQuota is the device-list calls one tick of the dispatcher queues
// to spread a full pass of passCalls over interval: ceil(passCalls × tick /
// interval). In steady state each user is then synced about once per
// interval, and the calls are even over it.
func SyncTickQuota(passCalls int64, tick, interval time.Duration) int {
	if passCalls <= 0 || tick <= 0 || interval <= 0 {
		return 0
	}
	q := math.Ceil(float64(passCalls) * tick.Seconds() / interval.Seconds())
	return int(min(q, math.MaxInt32))
}

// PickDueSyncUsers locks the users of orgs due a sync (never synced, or
// last synced at least interval ago, with a kind to list and no job
// pending), oldest sync first, as many as calls device-list calls serve
// after the calls of the jobs still pending; at least one when none is
// pending, however many kinds it has. Queue them in the same transaction
// (tx) and MarkSyncQueued. Rows other transactions lock are skipped. It is
// PickSyncUsers without the spread.
//
// A pending job is one still in river_job unfinished: a user whose job was
// cancelled or discarded without clearing queued_job is due again.
func PickDueSyncUsers(ctx context.Context, tx DB, orgs []string, interval time.Duration, calls int) (due []DueSyncUser, pending int, err error) {
	p, err := PickSyncUsers(ctx, tx, orgs, SyncPick{Interval: interval, Calls: calls})
	return p.Due, p.Pending, err
}

// PickSyncUsers locks the users of orgs due a sync as PickDueSyncUsers
// does, spreading them over the interval when pick.Tick is set: first the
// overdue users (last synced, or first listed if never, more than
// SyncOverdue ago), oldest first, as many as pick.Calls serve after the
// pending calls; then the others due (never synced first, then oldest
// sync first) within what is left of the tick's quota,
// min(pick.Calls, SyncTickQuota(pass calls, Tick, Interval)). A
// deployment's first pass (every user never synced) is spread too. When
// nothing is pending and nothing overdue picked, a user of up to three
// kinds always fits, as in PickDueSyncUsers.
func PickSyncUsers(ctx context.Context, tx DB, orgs []string, pick SyncPick) (SyncPicked, error) {
	var p SyncPicked
	err := tx.QueryRow(ctx, `
		WITH cleared AS (
			UPDATE sync_user s SET queued_job = NULL
			WHERE s.queued_job IS NOT NULL AND s.org_id = ANY ($1::uuid[])
			  AND NOT EXISTS (`+syncJobPendingSQL+`)
			RETURNING sync_kinds
		)
		SELECT (SELECT coalesce(sum(sync_kinds), 0) FROM sync_user WHERE queued_job IS NOT NULL AND org_id = ANY ($1::uuid[]))
		     - (SELECT coalesce(sum(sync_kinds), 0) FROM cleared)`, orgs).Scan(&p.Pending)
	if err != nil {
		return p, mapErr(err)
	}
	atLeast := func(budget int, used int) int {
		if p.Pending == 0 && used == 0 {
			return max(budget, len(reauth.DeviceKinds)) // never starve a user of three kinds
		}
		return budget
	}
	if pick.Tick <= 0 || pick.Interval <= 0 {
		p.Due, err = pickDue(ctx, tx, orgs, pick.Interval, nil, atLeast(pick.Calls-p.Pending, 0))
		return p, err
	}
	// The spread: a full pass's calls, and the overdue users' (the users
	// picked below are locked; these sums need not be).
	overdueSecs := SyncOverdue(pick.Interval).Seconds()
	var overdueCalls int64
	err = tx.QueryRow(ctx, `
		SELECT coalesce(sum(sync_kinds), 0),
			coalesce(sum(sync_kinds) FILTER (WHERE queued_job IS NULL
				AND coalesce(synced_at, created_at) <= now() - make_interval(secs => $2::float8)), 0)
		FROM sync_user WHERE gone_at IS NULL AND org_id = ANY ($1::uuid[])`, orgs, overdueSecs).Scan(&p.PassCalls, &overdueCalls)
	if err != nil {
		return p, mapErr(err)
	}
	p.Quota = min(pick.Calls, SyncTickQuota(p.PassCalls, pick.Tick, pick.Interval))
	used := 0
	if overdueCalls > 0 {
		overdue := true
		p.Due, err = pickDue(ctx, tx, orgs, pick.Interval, &overdue, atLeast(pick.Calls-p.Pending, 0))
		if err != nil {
			return p, err
		}
		p.Overdue = len(p.Due)
		for _, u := range p.Due {
			used += len(u.Kinds)
		}
	}
	notOverdue := false
	rest, err := pickDue(ctx, tx, orgs, pick.Interval, &notOverdue, atLeast(p.Quota-p.Pending-used, used))
	p.Due = append(p.Due, rest...)
	return p, err
}

// pickDue locks the users of orgs due a sync, not queued, oldest sync first
// (never synced first of all), as many as budget device-list calls serve;
// overdue, when set, takes only the users overdue (true) or only the
// others (false).
func pickDue(ctx context.Context, tx DB, orgs []string, interval time.Duration, overdue *bool, budget int) ([]DueSyncUser, error) {
	if budget <= 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `
		WITH due AS (
			SELECT org_id, user_id, sync_kinds, num_inverters, num_electric_vehicles, num_wallboxes, synced_at, created_at
			FROM sync_user
			WHERE gone_at IS NULL AND queued_job IS NULL AND sync_kinds > 0 AND org_id = ANY ($1::uuid[])
			  AND (synced_at IS NULL OR synced_at <= now() - make_interval(secs => $2::float8))
			  AND ($4::bool IS NULL
			    OR (coalesce(synced_at, created_at) <= now() - make_interval(secs => $5::float8)) = $4::bool)
			ORDER BY synced_at NULLS FIRST, created_at, user_id
			LIMIT $3
			FOR UPDATE SKIP LOCKED
		)
		SELECT org_id::text, user_id::text, num_inverters, num_electric_vehicles, num_wallboxes
		FROM (SELECT *, sum(sync_kinds) OVER (ORDER BY synced_at NULLS FIRST, created_at, user_id) AS running FROM due) d
		WHERE running <= $3
		ORDER BY synced_at NULLS FIRST, created_at, user_id`, orgs, interval.Seconds(), budget, overdue, SyncOverdue(interval).Seconds())
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var due []DueSyncUser
	for rows.Next() {
		var u DueSyncUser
		var inv, ev, wb *int
		if err := rows.Scan(&u.OrgID, &u.UserID, &inv, &ev, &wb); err != nil {
			return nil, mapErr(err)
		}
		u.Kinds = SyncKinds(inv, ev, wb)
		due = append(due, u)
	}
	return due, mapErr(rows.Err())
}

// MarkSyncQueued records the job queued for each user (jobs[i] for
// users[i]).
func MarkSyncQueued(ctx context.Context, tx DB, users []DueSyncUser, jobs []int64) error {
	orgs, ids := make([]string, len(users)), make([]string, len(users))
	for i, u := range users {
		orgs[i], ids[i] = u.OrgID, u.UserID
	}
	_, err := tx.Exec(ctx, `
		UPDATE sync_user s SET queued_job = q.job
		FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS q (org_id, user_id, job)
		WHERE s.org_id = q.org_id AND s.user_id = q.user_id`, orgs, ids, jobs)
	return mapErr(err)
}

// SyncUsersDue reports whether any user of orgs is due a sync and not
// queued.
func SyncUsersDue(ctx context.Context, db DB, orgs []string, interval time.Duration) (bool, error) {
	var due bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM sync_user
		WHERE gone_at IS NULL AND queued_job IS NULL AND sync_kinds > 0 AND org_id = ANY ($1::uuid[])
		  AND (synced_at IS NULL OR synced_at <= now() - make_interval(secs => $2::float8)))`,
		orgs, interval.Seconds()).Scan(&due)
	return due, mapErr(err)
}

// MarkUserSynced records that the user's devices were just listed; its job
// is no longer pending.
func MarkUserSynced(ctx context.Context, db DB, orgID, userID string) error {
	_, err := db.Exec(ctx, `UPDATE sync_user SET synced_at = now(), queued_job = NULL
		WHERE org_id = $1 AND user_id = $2`, orgID, userID)
	return mapErr(err)
}

// MarkSyncUserGone records that Podero no longer knows the user (a 404 on
// its devices); the next users list that has it brings it back.
func MarkSyncUserGone(ctx context.Context, db DB, orgID, userID string) error {
	_, err := db.Exec(ctx, `UPDATE sync_user SET gone_at = coalesce(gone_at, now()), synced_at = now(), queued_job = NULL
		WHERE org_id = $1 AND user_id = $2`, orgID, userID)
	return mapErr(err)
}

// SyncRateWindow is the window over which SyncStatus.RecentCalls counts the
// sync's device-list calls.
const SyncRateWindow = 10 * time.Minute

// SyncStatus is how far the device sync is behind, and how long a pass
// takes, for `reauth stats`, /ops and /metrics.
type SyncStatus struct {
	// Users are the users the latest lists show (not gone);
	// UsersWithDevices those with a kind to list (the others cost nothing).
	Users            int64 `json:"users"`
	UsersWithDevices int64 `json:"users_with_devices"`
	// PassCalls is the device-list calls a full pass takes: one per kind
	// each user has or may have (an unknown count is listed).
	PassCalls int64 `json:"pass_calls"`
	// Queued is the users with a sync job pending; Due the users due a
	// sync (never synced, or at least the interval ago) not yet queued.
	Queued int64 `json:"queued"`
	Due    int64 `json:"due"`
	// OldestSync is the oldest last sync of a listed user with devices
	// (when it was first listed, if never synced); zero when there is none.
	// Lag is now minus OldestSync, the sync lag; 0 when there is none.
	OldestSync time.Time     `json:"oldest_sync,omitzero"`
	Lag        time.Duration `json:"lag_ns"`
	// RecentCalls is the device-list calls of the syncs that finished
	// within the last SyncRateWindow.
	RecentCalls int64 `json:"recent_calls"`
	// ListedAt is when the least recent of the organizations' latest
	// complete users lists began; zero when one was never listed.
	ListedAt time.Time `json:"listed_at,omitzero"`
}

// CallsPerSecond is the sync's device-list calls a second over the last
// SyncRateWindow.
func (s SyncStatus) CallsPerSecond() float64 {
	return float64(s.RecentCalls) / SyncRateWindow.Seconds()
}

// PassTime is how long a full pass takes at callsPerSecond device-list
// calls a second (e.g. SYNC_RATE_SHARE × PODERO_RATE_LIMIT, the configured
// rate, or CallsPerSecond, the current one); ok is false at a rate of 0
// with calls to make.
func (s SyncStatus) PassTime(callsPerSecond float64) (d time.Duration, ok bool) {
	if s.PassCalls == 0 {
		return 0, true
	}
	if callsPerSecond <= 0 {
		return 0, false
	}
	secs := math.Min(float64(s.PassCalls)/callsPerSecond, float64(math.MaxInt64/int64(time.Second)))
	return time.Duration(secs * float64(time.Second)), true
}

// GetSyncStatus reads the sync's status for the organizations orgs (nil:
// every organization listed), counting as due the users not synced within
// interval. It reads every listed user once.
func GetSyncStatus(ctx context.Context, db DB, orgs []string, interval time.Duration) (SyncStatus, error) {
	var s SyncStatus
	var oldest, listed *time.Time
	var lag float64
	var listedOrgs, wanted int
	err := db.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE sync_kinds > 0), coalesce(sum(sync_kinds), 0),
			count(*) FILTER (WHERE queued_job IS NOT NULL),
			count(*) FILTER (WHERE sync_kinds > 0 AND queued_job IS NULL
			                 AND (synced_at IS NULL OR synced_at <= now() - make_interval(secs => $2::float8))),
			min(coalesce(synced_at, created_at)) FILTER (WHERE sync_kinds > 0),
			coalesce(extract(epoch FROM now() - min(coalesce(synced_at, created_at)) FILTER (WHERE sync_kinds > 0)), 0)::float8,
			coalesce(sum(sync_kinds) FILTER (WHERE synced_at > now() - make_interval(secs => $3::float8)), 0),
			(SELECT min(listed_at) FROM sync_org WHERE $1::uuid[] IS NULL OR org_id = ANY ($1::uuid[])),
			(SELECT count(*) FROM sync_org WHERE $1::uuid[] IS NULL OR org_id = ANY ($1::uuid[])),
			coalesce(cardinality($1::uuid[]), 0)
		FROM sync_user
		WHERE gone_at IS NULL AND ($1::uuid[] IS NULL OR org_id = ANY ($1::uuid[]))`,
		orgs, interval.Seconds(), SyncRateWindow.Seconds()).Scan(
		&s.Users, &s.UsersWithDevices, &s.PassCalls, &s.Queued, &s.Due, &oldest, &lag, &s.RecentCalls,
		&listed, &listedOrgs, &wanted)
	if err != nil {
		return s, mapErr(err)
	}
	if oldest != nil {
		s.OldestSync, s.Lag = *oldest, time.Duration(lag*float64(time.Second))
	}
	if listed != nil && listedOrgs >= wanted {
		s.ListedAt = *listed
	}
	return s, nil
}
