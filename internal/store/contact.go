package store

import (
	"context"
	"time"

	"github.com/reauth/reauth"
)

// This file holds the queries of contact (how a user is reached) and
// email_suppression (addresses refused permanently).

// Contact is how a user is reached: an address, a locale, FCM tokens, the
// channels to use in order of preference and the channels opted out of.
type Contact struct {
	OrgID  string `json:"org_id" db:"org_id"`
	UserID string `json:"user_id" db:"user_id"`
	Email  string `json:"email,omitempty" db:"email"`
	Locale string `json:"locale,omitempty" db:"locale"`
	// Timezone is the user's IANA zone, for quiet hours (SEND_WINDOW); "":
	// derived from the Podero user's country, else DEFAULT_TIMEZONE.
	Timezone  string   `json:"timezone,omitempty" db:"timezone"`
	FCMTokens []string `json:"fcm_tokens" db:"fcm_tokens"`
	// FCMRegisteredAt is when each of FCMTokens (by index) was last
	// registered; tokens older than FCMTokenMaxAge are not sent to. Empty
	// in a Recipient's contact.
	FCMRegisteredAt []time.Time `json:"fcm_tokens_registered_at" db:"fcm_tokens_registered_at"`
	Channels        []string    `json:"channels" db:"channels"`
	OptedOut        []string    `json:"opted_out" db:"opted_out"`
	CreatedAt       time.Time   `json:"created_at" db:"created_at"`
	UpdatedAt       time.Time   `json:"updated_at" db:"updated_at"`
}

// ContactUpdate changes a contact; nil fields keep what is stored (or the
// default for a new contact: no email, no locale, no tokens, channels
// ["email"], none opted out). An empty string or list clears.
type ContactUpdate struct {
	Email     *string
	Locale    *string
	Timezone  *string
	FCMTokens *[]string
	Channels  *[]string
	OptedOut  *[]string
	// FCMRegisteredAt is when FCMTokens were registered; zero: now. Every
	// token named counts as registered again, so naming a stored one
	// refreshes its time.
	FCMRegisteredAt time.Time
}

// FCMTokenMaxAge is FCM's staleness window: a token not registered again
// for this long is likely no phone's any more (FCM treats tokens inactive
// for 270 days as expired), so it is not sent to, and reauth_prune removes
// it.
const FCMTokenMaxAge = 270 * 24 * time.Hour

// fcmTokenMaxAgeSQL is FCMTokenMaxAge in SQL (the store's tests check that
// they agree).
const fcmTokenMaxAgeSQL = `interval '270 days'`

// fcmRegistered is when token t of contact c was last registered (its
// last change for a token stored without a time).
const fcmRegistered = `coalesce((c.fcm_registered_at->>t)::timestamptz, c.updated_at)`

// contactColumns are a Contact's columns (by its db tags).
const contactColumns = `org_id, user_id, coalesce(email, '') AS email, coalesce(locale, '') AS locale,
	coalesce(timezone, '') AS timezone, fcm_tokens, ARRAY(SELECT ` + fcmRegistered + ` FROM unnest(c.fcm_tokens) WITH ORDINALITY AS u(t, i) ORDER BY i)
		AS fcm_tokens_registered_at,
	channels, opted_out, created_at, updated_at`

// recipientColumns are how a user is reached, from a contact c LEFT JOINed
// (empty when there is none), as recipientRow scans them; they are named so
// that they do not collide with a session's email and locale. The FCM
// tokens are those to send to: registered within FCMTokenMaxAge.
const recipientColumns = `coalesce(c.email, '') AS contact_email, coalesce(c.locale, '') AS contact_locale,
	coalesce(c.timezone, '') AS contact_timezone, ARRAY(SELECT t FROM unnest(c.fcm_tokens) WITH ORDINALITY AS u(t, i)
		WHERE ` + fcmRegistered + ` >= now() - ` + fcmTokenMaxAgeSQL + ` ORDER BY i) AS fcm_tokens,
	coalesce(c.channels, '{}') AS channels,
	coalesce(c.opted_out, '{}') AS opted_out`

// recipientRow is a row of recipientColumns and whether the address was
// refused before (suppressed).
type recipientRow struct {
	Email      string   `db:"contact_email"`
	Locale     string   `db:"contact_locale"`
	Timezone   string   `db:"contact_timezone"`
	FCMTokens  []string `db:"fcm_tokens"`
	Channels   []string `db:"channels"`
	OptedOut   []string `db:"opted_out"`
	Suppressed bool     `db:"suppressed"`
}

// contact is the Contact of user (orgID, userID) the row holds.
func (r recipientRow) contact(orgID, userID string) Contact {
	return Contact{OrgID: orgID, UserID: userID, Email: r.Email, Locale: r.Locale, Timezone: r.Timezone,
		FCMTokens: r.FCMTokens, Channels: r.Channels, OptedOut: r.OptedOut}
}

// UpsertContact creates or changes the contact of (orgID, userID). The FCM
// tokens it names are registered at u.FCMRegisteredAt (now when zero).
func UpsertContact(ctx context.Context, db DB, orgID, userID string, u ContactUpdate) (Contact, error) {
	var registered *time.Time
	if !u.FCMRegisteredAt.IsZero() {
		registered = &u.FCMRegisteredAt
	}
	return queryOne[Contact](ctx, db, `
		INSERT INTO contact AS c (org_id, user_id, email, locale, fcm_tokens, fcm_registered_at, channels, opted_out, timezone)
		VALUES ($1, $2, nullif($3::text, ''), nullif($4::text, ''), coalesce($5::text[], '{}'),
			(SELECT coalesce(jsonb_object_agg(t, coalesce($8::timestamptz, now())), '{}') FROM unnest($5::text[]) AS t),
			coalesce($6::text[], '{email}'), coalesce($7::text[], '{}'), nullif($9::text, ''))
		ON CONFLICT (org_id, user_id) DO UPDATE SET
			email = CASE WHEN $3::text IS NULL THEN c.email ELSE nullif($3, '') END,
			locale = CASE WHEN $4::text IS NULL THEN c.locale ELSE nullif($4, '') END,
			fcm_tokens = coalesce($5, c.fcm_tokens),
			fcm_registered_at = CASE WHEN $5::text[] IS NULL THEN c.fcm_registered_at ELSE excluded.fcm_registered_at END,
			channels = coalesce($6, c.channels),
			opted_out = coalesce($7, c.opted_out),
			timezone = CASE WHEN $9::text IS NULL THEN c.timezone ELSE nullif($9, '') END,
			updated_at = now()
		RETURNING `+contactColumns,
		orgID, userID, u.Email, u.Locale, u.FCMTokens, u.Channels, u.OptedOut, registered, u.Timezone)
}

// GetContact returns the contact of (orgID, userID), ErrNotFound if none.
func GetContact(ctx context.Context, db DB, orgID, userID string) (Contact, error) {
	return queryOne[Contact](ctx, db, `SELECT `+contactColumns+` FROM contact c WHERE org_id = $1 AND user_id = $2`, orgID, userID)
}

// RemoveFCMTokens drops tokens FCM reported unregistered from the contact.
func RemoveFCMTokens(ctx context.Context, db DB, orgID, userID string, tokens []string) error {
	_, err := db.Exec(ctx, `
		UPDATE contact SET fcm_tokens = ARRAY(SELECT t FROM unnest(fcm_tokens) AS t WHERE t <> ALL($3::text[])),
			fcm_registered_at = fcm_registered_at - $3::text[], updated_at = now()
		WHERE org_id = $1 AND user_id = $2`, orgID, userID, tokens)
	return mapErr(err)
}

// PruneFCMTokens removes the FCM tokens last registered before cutoff from
// every contact (Recipient no longer returns them anyway) and returns how
// many it removed.
func PruneFCMTokens(ctx context.Context, db DB, cutoff time.Time) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, `
		WITH stale AS (
			SELECT c.org_id, c.user_id, ARRAY(SELECT t FROM unnest(c.fcm_tokens) AS t WHERE `+fcmRegistered+` < $1) AS tokens
			FROM contact c
			WHERE c.fcm_tokens <> '{}' AND EXISTS (SELECT FROM unnest(c.fcm_tokens) AS t WHERE `+fcmRegistered+` < $1)
			FOR UPDATE
		), pruned AS (
			UPDATE contact c SET
				fcm_tokens = ARRAY(SELECT t FROM unnest(c.fcm_tokens) WITH ORDINALITY AS u(t, i) WHERE t <> ALL(s.tokens) ORDER BY i),
				fcm_registered_at = c.fcm_registered_at - s.tokens, updated_at = now()
			FROM stale s WHERE c.org_id = s.org_id AND c.user_id = s.user_id
			RETURNING cardinality(s.tokens) AS removed
		)
		SELECT coalesce(sum(removed), 0) FROM pruned`, cutoff).Scan(&n)
	return n, mapErr(err)
}

// RequestView is what working a request reads before it calls Podero, in
// one query: the user's contact (the zero Contact when there is none) and
// whether the address was refused before, the device's session completed
// most recently since a time (REAUTH_REPEAT_COOLDOWN), what the first
// message shows and when it may go (the device's make and model and the
// user's country, as the last sync saw them), and how long calls to
// Podero are still held (PoderoHoldLeft), so that the call that follows
// at once needs no look of its own.
type RequestView struct {
	Contact    Contact
	Suppressed bool  // the address (the request's, else the contact's) was refused before
	Completed  int64 // the device's session completed since; 0: none
	Open       bool  // the device has an open session (which a new one supersedes)
	// "" when unknown.
	Manufacturer, Model, Country string
	HoldLeft                     time.Duration
}

// requestRow is a row of ViewRequest's query.
type requestRow struct {
	recipientRow
	Completed    int64   `db:"completed"`
	Open         bool    `db:"open"`
	Manufacturer string  `db:"manufacturer"`
	Model        string  `db:"model"`
	Country      string  `db:"country"`
	HoldSeconds  float64 `db:"hold_seconds"`
}

// ViewRequest reads the RequestView of a request by user (orgID, userID)
// for device (kind, deviceID) naming email ("": none), looking for a
// session completed since completedSince (zero: none is looked for).
func ViewRequest(ctx context.Context, db DB, orgID, userID string, kind reauth.DeviceKind, deviceID, email string, completedSince time.Time) (RequestView, error) {
	r, err := queryOne[requestRow](ctx, db, `
		SELECT `+recipientColumns+`,
			EXISTS (SELECT FROM email_suppression WHERE address = lower(coalesce(nullif($6, ''), c.email))) AS suppressed,
			coalesce((SELECT s.id `+recentCompletionFrom+`), 0) AS completed,
			EXISTS (SELECT FROM auth_session s WHERE s.device_kind = $1 AND s.device_id = $2 AND s.state = 'open') AS open,
			coalesce(d.manufacturer, '') AS manufacturer, coalesce(d.model, '') AS model, coalesce(u.country, '') AS country,
			`+holdSecondsSQL+` AS hold_seconds
		FROM (SELECT) AS one
		LEFT JOIN contact c ON c.org_id = $4 AND c.user_id = $5
		LEFT JOIN device d ON d.kind = $1 AND d.id = $2
		LEFT JOIN sync_user u ON u.org_id = $4 AND u.user_id = $5`,
		kind, deviceID, nullTime(completedSince), orgID, userID, email)
	return RequestView{Contact: r.contact(orgID, userID), Suppressed: r.Suppressed, Completed: r.Completed, Open: r.Open,
		Manufacturer: r.Manufacturer, Model: r.Model, Country: r.Country,
		HoldLeft: time.Duration(r.HoldSeconds * float64(time.Second))}, err
}

// SuppressEmail records that an SMTP server refused address permanently:
// no email goes to it again.
func SuppressEmail(ctx context.Context, db DB, address, reason string) error {
	_, err := db.Exec(ctx, `INSERT INTO email_suppression (address, reason) VALUES (lower($1), $2)
		ON CONFLICT (address) DO NOTHING`, address, reason)
	return mapErr(err)
}

// Suppression is an address on the suppression list.
type Suppression struct {
	Address   string    `json:"email" db:"address"`
	Reason    string    `json:"reason" db:"reason"`
	CreatedAt time.Time `json:"created_at" db:"created_at"`
}

// GetSuppression returns address's suppression, ErrNotFound when it is not
// suppressed.
func GetSuppression(ctx context.Context, db DB, address string) (Suppression, error) {
	return queryOne[Suppression](ctx, db, `SELECT address, reason, created_at FROM email_suppression WHERE address = lower($1)`,
		address)
}

// LiftSuppression takes address off the suppression list, so email goes to
// it again; ErrNotFound when it was not on it.
func LiftSuppression(ctx context.Context, db DB, address string) (Suppression, error) {
	return queryOne[Suppression](ctx, db, `DELETE FROM email_suppression WHERE address = lower($1) RETURNING address, reason, created_at`,
		address)
}

// LiftSuppressionsSince takes every address suppressed at or after since
// off the list and returns how many: when the email channel turns out to be
// broken, the refusals that suppressed them were the relay's, not the
// addresses'.
func LiftSuppressionsSince(ctx context.Context, db DB, since time.Time) (int64, error) {
	tag, err := db.Exec(ctx, `DELETE FROM email_suppression WHERE created_at >= $1`, since)
	return tag.RowsAffected(), mapErr(err)
}

// EmailSuppressed reports whether address was refused permanently before.
func EmailSuppressed(ctx context.Context, db DB, address string) (bool, error) {
	var yes bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM email_suppression WHERE address = lower($1))`, address).Scan(&yes)
	return yes, mapErr(err)
}
