// Package reauth is the public contract of the reauth service: the device
// kinds it handles, the River job arguments other systems insert, and
// Enqueue for Go callers that want to request a reauthentication inside
// their own database transaction.
//
// The JSON form of the job arguments and the queue names are stable: Python
// and Ruby services insert the same rows with River's client libraries.
package reauth

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/reauth/reauth/internal/strictjson"
)

// DeviceKind is the kind of a device that has a Podero auth_session endpoint.
type DeviceKind string

const (
	Inverter        DeviceKind = "inverter"
	ElectricVehicle DeviceKind = "electric_vehicle"
	Wallbox         DeviceKind = "wallbox"
)

// DeviceKinds lists every valid DeviceKind.
var DeviceKinds = []DeviceKind{Inverter, ElectricVehicle, Wallbox}

// Valid reports whether k is one of DeviceKinds.
func (k DeviceKind) Valid() bool {
	switch k {
	case Inverter, ElectricVehicle, Wallbox:
		return true
	}
	return false
}

// Queue names, part of the contract.
const (
	QueuePodero      = "podero"
	QueueNotify      = "notify"
	QueueMaintenance = "maintenance"
	QueueEvents      = "events"
)

// Locales are the languages of Podero's connect UI, and so the languages a
// request may ask for. Messages exist in every one of them or fall back to
// English.
var Locales = []string{"en", "de", "sv", "hu", "it", "et", "pl", "ro"}

// DeviceArgs are the arguments of a reauth_device job: ask Podero for a fresh
// authentication session for one device and get its link to the user.
//
// The job is unique per device (kind and id) while it is not finished: a
// second request for a device that already has one pending is a duplicate.
type DeviceArgs struct {
	OrgID string `json:"org_id"`
	// UserID is Podero's ID of the device's user. ExternalUserID, the
	// partner's own customer ID for the user, may stand in for it: the
	// worker then finds the user at Podero (users/by-ext-id). Exactly one of
	// the two is set.
	UserID         string     `json:"user_id,omitempty"`
	ExternalUserID string     `json:"external_user_id,omitempty"`
	DeviceKind     DeviceKind `json:"device_kind" river:"unique"`
	DeviceID       string     `json:"device_id" river:"unique"`
	// Email overrides the user's email from Podero's user list.
	Email string `json:"email,omitempty"`
	// Locale picks the message language ("en" when empty).
	Locale string `json:"locale,omitempty"`
	// SuccessURL and CancelURL are the partner's pages the user lands on
	// after the manufacturer login; the service's configured pages when empty.
	SuccessURL string `json:"success_url,omitempty"`
	CancelURL  string `json:"cancel_url,omitempty"`
	// Reason is free text for operators ("api", "sweep", ...).
	Reason string `json:"reason,omitempty"`
	// Force asks for a new session even when the device completed one
	// within REAUTH_REPEAT_COOLDOWN (such a request is otherwise done
	// without a message: Podero takes minutes to show the device as
	// authenticated again).
	Force bool `json:"force,omitempty"`
	// Immediate asks for this device's own message at once, for a user
	// waiting for it (e.g. who just pressed "reconnect" in the partner's
	// app). Otherwise the first message waits up to BATCH_WINDOW, so that
	// one message announces every device of the user that needs a link
	// within that window.
	Immediate bool `json:"immediate,omitempty"`

	decodeErr error // set by UnmarshalJSON, reported by Validate
}

// UnmarshalJSON decodes strictly (unknown fields and wrong types are errors)
// but never fails: args another language inserted straight into river_job
// must get the job cancelled with a clear reason, not retried, so the
// problem is kept for Validate to report.
func (a *DeviceArgs) UnmarshalJSON(b []byte) error {
	type plain DeviceArgs // without this method
	*a = DeviceArgs{}
	a.decodeErr = decodeStrict(b, (*plain)(a))
	return nil
}

// Kind is the River job kind.
func (DeviceArgs) Kind() string { return "reauth_device" }

// UniqueStates are the job states in which a reauth_device job blocks another
// for the same device: every state but the finished ones.
var UniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable,
	rivertype.JobStatePending,
	rivertype.JobStateRetryable,
	rivertype.JobStateRunning,
	rivertype.JobStateScheduled,
}

// Job priorities of reauth_device jobs (River's, 1 first): a user or a
// partner's service waiting comes before the sweep's fleet.
const (
	PriorityInteractive = 1
	PriorityBulk        = 2
)

// ReasonSweep is the Reason of the sweep's requests.
const ReasonSweep = "sweep"

// InsertOpts puts the job on the podero queue, unique per device while
// unfinished; the sweep's requests get PriorityBulk, every other
// PriorityInteractive.
func (a DeviceArgs) InsertOpts() river.InsertOpts {
	priority := PriorityInteractive
	if a.Reason == ReasonSweep {
		priority = PriorityBulk
	}
	return river.InsertOpts{
		Queue:    QueuePodero,
		Priority: priority,
		UniqueOpts: river.UniqueOpts{
			ByArgs:  true,
			ByState: UniqueStates,
		},
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsUUID reports whether s is a UUID in its canonical textual form.
func IsUUID(s string) bool { return uuidRE.MatchString(s) }

// Normalized returns a with its UUIDs in lower case, so that one device has
// one unique key however a caller spells its ID.
func (a DeviceArgs) Normalized() DeviceArgs {
	a.OrgID, a.UserID, a.DeviceID = strings.ToLower(a.OrgID), strings.ToLower(a.UserID), strings.ToLower(a.DeviceID)
	return a
}

// Validate checks every field and returns one error naming all that is wrong.
func (a DeviceArgs) Validate() error {
	if a.decodeErr != nil {
		return a.decodeErr
	}
	var errs []error
	for _, f := range []struct{ name, v string }{{"org_id", a.OrgID}, {"user_id", a.UserID}, {"device_id", a.DeviceID}} {
		switch {
		case f.v == "" && f.name == "user_id":
			if a.ExternalUserID == "" {
				errs = append(errs, errors.New("user_id is required (or external_user_id)"))
			}
		case f.v == "":
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		case !IsUUID(f.v):
			errs = append(errs, fmt.Errorf("%s must be a UUID", f.name))
		}
	}
	if a.ExternalUserID != "" {
		if err := ValidateExternalUserID(a.ExternalUserID); err != nil {
			errs = append(errs, err)
		} else if a.UserID != "" {
			errs = append(errs, errors.New("give user_id or external_user_id, not both"))
		}
	}
	if a.DeviceKind == "" {
		errs = append(errs, errors.New("device_kind is required"))
	} else if !a.DeviceKind.Valid() {
		errs = append(errs, fmt.Errorf("device_kind must be one of inverter, electric_vehicle, wallbox"))
	}
	if a.Email != "" {
		if err := ValidateEmail(a.Email); err != nil {
			errs = append(errs, err)
		}
	}
	if a.Locale != "" && !ValidLocale(a.Locale) {
		errs = append(errs, fmt.Errorf("locale must be one of %s", strings.Join(Locales, ", ")))
	}
	for _, f := range []struct{ name, v string }{{"success_url", a.SuccessURL}, {"cancel_url", a.CancelURL}} {
		if f.v != "" {
			if err := ValidateURL(f.v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			}
		}
	}
	if len(a.Reason) > 200 {
		errs = append(errs, errors.New("reason must be at most 200 characters"))
	}
	return errors.Join(errs...)
}

// Check is the service's validation of a request, the same at every entry
// (the HTTP API, the CLI and its CSV, the reauth_device worker): a
// normalized, and one error naming all that is wrong with its fields
// (Validate) and with its success_url and cancel_url against the hosts
// the operator allows (REDIRECT_HOSTS; the service passes its
// hostlist.List).
func (a DeviceArgs) Check(redirectHosts interface{ Check(field, raw string) error }) (DeviceArgs, error) {
	a = a.Normalized()
	return a, errors.Join(a.Validate(), redirectHosts.Check("success_url", a.SuccessURL), redirectHosts.Check("cancel_url", a.CancelURL))
}

// ValidateExternalUserID accepts a partner's customer ID: 1 to 255 bytes of
// printable UTF-8 without surrounding space.
func ValidateExternalUserID(s string) error {
	if s == "" || len(s) > 255 || strings.TrimSpace(s) != s || !utf8.ValidString(s) ||
		strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return errors.New("external_user_id must be 1 to 255 printable characters without surrounding space")
	}
	return nil
}

// ValidLocale reports whether l is one of Locales.
func ValidLocale(l string) bool {
	for _, x := range Locales {
		if l == x {
			return true
		}
	}
	return false
}

// ValidateEmail accepts a bare address (no display name), at most 254 bytes.
func ValidateEmail(s string) error {
	if len(s) > 254 {
		return errors.New("email is too long")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" {
		return errors.New("email must be a plain address like user@example.com")
	}
	return nil
}

// ValidateURL accepts an absolute http or https URL with a host and no user info.
func ValidateURL(s string) error {
	if len(s) > 2048 {
		return errors.New("URL is too long")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errors.New("must be an absolute http or https URL")
	}
	return nil
}

// NotifyArgs are the arguments of a reauth_notify job: deliver step Step
// (0 is the first message, 1 and up are reminders) of session SessionID;
// or, without a SessionID, one message for step Step of every session of
// the user (OrgID, UserID) that is due then (BATCH_WINDOW). Batch names
// that grouped message's window (its start in Unix milliseconds), so the
// job is unique per user, step and window.
type NotifyArgs struct {
	SessionID int64  `json:"session_id,omitempty"`
	OrgID     string `json:"org_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	Batch     int64  `json:"batch,omitempty"`
	Step      int    `json:"step"`

	decodeErr error // set by UnmarshalJSON, reported by Validate
}

// UnmarshalJSON decodes strictly but never fails; see DeviceArgs.UnmarshalJSON.
func (a *NotifyArgs) UnmarshalJSON(b []byte) error {
	type plain NotifyArgs // without this method
	*a = NotifyArgs{}
	a.decodeErr = decodeStrict(b, (*plain)(a))
	return nil
}

// Validate reports malformed args.
func (a NotifyArgs) Validate() error {
	if a.decodeErr != nil {
		return a.decodeErr
	}
	if a.Step < 0 {
		return errors.New("session_id must be positive and step not negative")
	}
	if a.SessionID != 0 || (a.OrgID == "" && a.UserID == "" && a.Batch == 0) {
		if a.SessionID <= 0 || a.OrgID != "" || a.UserID != "" || a.Batch != 0 {
			return errors.New("session_id must be positive and step not negative (or, for a user's grouped message, org_id, user_id and batch without session_id)")
		}
		return nil
	}
	if !IsUUID(a.OrgID) || !IsUUID(a.UserID) || a.Batch <= 0 {
		return errors.New("a user's grouped message needs org_id and user_id (UUIDs) and a positive batch")
	}
	return nil
}

// Grouped reports whether a names a user's grouped message rather than one
// session's.
func (a NotifyArgs) Grouped() bool { return a.SessionID == 0 }

// decodeStrict decodes job args b into v strictly (internal/strictjson),
// with an error that names the field.
func decodeStrict(b []byte, v any) error {
	if err := strictjson.Decode(b, v); err != nil {
		return fmt.Errorf("malformed job args: %w", err)
	}
	return nil
}

// Kind is the River job kind.
func (NotifyArgs) Kind() string { return "reauth_notify" }

// InsertOpts puts the job on the notify queue, unique per (session, step),
// or per (user, step, batch) for a grouped message.
func (NotifyArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:      QueueNotify,
		UniqueOpts: river.UniqueOpts{ByArgs: true},
	}
}

// ReasonLinkExpired is the Reason of the request the service makes itself
// when a user opens a link after LINK_TTL.
const ReasonLinkExpired = "link_expired"

// Event types sent to EVENTS_WEBHOOK_URL.
const (
	EventLinkCreated = "reauth.link_created"
	EventLinkOpened  = "reauth.link_opened"
	EventCompleted   = "reauth.completed"
	EventCancelled   = "reauth.cancelled"
	EventFailed      = "reauth.failed"
	// EventVerificationFailed: a login completed through the link, but
	// Podero still showed the device lapsed VERIFY_TIMEOUT later; the user
	// is sent a fresh link.
	EventVerificationFailed = "reauth.verification_failed"
	// EventRemindersStopped: the user opted out of a session's reminders
	// (one-click unsubscribe); the session stays open.
	EventRemindersStopped = "reauth.reminders_stopped"
)

// EventArgs are the arguments of a reauth_event job: deliver one event to the
// partner's backend (EVENTS_WEBHOOK_URL), signed the Standard Webhooks way
// with ID as the webhook-id. The service inserts these itself.
type EventArgs struct {
	ID         string     `json:"id" river:"unique"` // "evt_" + type + session or job: the same event gets the same ID
	Type       string     `json:"type"`              // one of the Event* constants
	OccurredAt time.Time  `json:"occurred_at"`
	SessionID  int64      `json:"session_id,omitempty"`
	OrgID      string     `json:"org_id"`
	UserID     string     `json:"user_id"`
	DeviceKind DeviceKind `json:"device_kind"`
	DeviceID   string     `json:"device_id"`
	Detail     string     `json:"detail,omitempty"` // why, for reauth.failed and reauth.completed (via_link, elsewhere)
	// Verified, on reauth.completed only: whether Podero showed the device
	// authenticated again (a completion through the link is sent at the
	// callback with false, and once more with true when a check confirms it).
	Verified *bool `json:"verified,omitempty"`

	decodeErr error // set by UnmarshalJSON, reported by Validate
}

// EventTypes are the event types there are.
var EventTypes = []string{EventLinkCreated, EventLinkOpened, EventCompleted, EventCancelled, EventFailed, EventRemindersStopped,
	EventVerificationFailed}

// UnmarshalJSON decodes strictly but never fails; see DeviceArgs.UnmarshalJSON.
func (a *EventArgs) UnmarshalJSON(b []byte) error {
	type plain EventArgs // without this method
	*a = EventArgs{}
	a.decodeErr = decodeStrict(b, (*plain)(a))
	return nil
}

// Validate reports malformed args.
func (a EventArgs) Validate() error {
	switch {
	case a.decodeErr != nil:
		return a.decodeErr
	case !strings.HasPrefix(a.ID, "evt_") || len(a.ID) > 200:
		return errors.New("id must start with evt_ (at most 200 characters)")
	case !slices.Contains(EventTypes, a.Type):
		return fmt.Errorf("type must be one of %s", strings.Join(EventTypes, ", "))
	case a.OccurredAt.IsZero():
		return errors.New("occurred_at is required")
	}
	return nil
}

// EventSubject is what an event is about: a session, or (SessionID 0) the
// request job JobID that never got one; and the device.
type EventSubject struct {
	SessionID  int64
	JobID      int64 // names the event only when SessionID is 0
	OrgID      string
	UserID     string
	DeviceKind DeviceKind
	DeviceID   string
}

// NewEvent builds the event of type typ about s, with detail (see
// EventArgs.Detail). The same event always gets the same ID, from its
// type and session (or job). The caller sets OccurredAt from its clock.
func NewEvent(typ string, s EventSubject, detail string) EventArgs {
	subject := fmt.Sprintf("s%d", s.SessionID)
	if s.SessionID == 0 {
		subject = fmt.Sprintf("j%d", s.JobID)
	}
	return EventArgs{
		ID: "evt_" + strings.TrimPrefix(typ, "reauth.") + "_" + subject, Type: typ, SessionID: s.SessionID,
		OrgID: s.OrgID, UserID: s.UserID, DeviceKind: s.DeviceKind, DeviceID: s.DeviceID, Detail: detail,
	}
}

// NewVerifiedCompletion is the reauth.completed event that confirms the
// completion through the link of session s.SessionID: verified true, with
// its own ID (evt_completed_verified_s<session>) beside the one the
// callback sent (verified false).
func NewVerifiedCompletion(s EventSubject) EventArgs {
	ev := NewEvent(EventCompleted, s, "via_link")
	ev.ID = fmt.Sprintf("evt_completed_verified_s%d", s.SessionID)
	verified := true
	ev.Verified = &verified
	return ev
}

// Kind is the River job kind.
func (EventArgs) Kind() string { return "reauth_event" }

// ReasonVerificationFailed is the Reason of the request the service makes
// itself when a login completed through the link did not take (the session
// became unverified): its first message says so.
const ReasonVerificationFailed = "verification_failed"

// VerifyArgs are the arguments of a reauth_verify job: check at Podero that
// the device of session SessionID, completed through its link, is
// authenticated again (VERIFY_AFTER after the callback, then every
// VERIFY_AFTER until VERIFY_TIMEOUT). The service inserts these itself.
type VerifyArgs struct {
	SessionID int64 `json:"session_id"`

	decodeErr error // set by UnmarshalJSON, reported by Validate
}

// UnmarshalJSON decodes strictly but never fails; see DeviceArgs.UnmarshalJSON.
func (a *VerifyArgs) UnmarshalJSON(b []byte) error {
	type plain VerifyArgs // without this method
	*a = VerifyArgs{}
	a.decodeErr = decodeStrict(b, (*plain)(a))
	return nil
}

// Validate reports malformed args.
func (a VerifyArgs) Validate() error {
	if a.decodeErr != nil {
		return a.decodeErr
	}
	if a.SessionID <= 0 {
		return errors.New("session_id must be positive")
	}
	return nil
}

// Kind is the River job kind.
func (VerifyArgs) Kind() string { return "reauth_verify" }

// InsertOpts puts the job on the maintenance queue, once per session.
func (VerifyArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// InsertOpts puts the job on the events queue, once per event ID.
func (EventArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueEvents, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// SyncArgs are the arguments of a reauth_sync job: list the users of every
// configured organization and record them, for reauth_sync_dispatch to
// queue their syncs.
type SyncArgs struct{}

// Kind is the River job kind.
func (SyncArgs) Kind() string { return "reauth_sync" }

// InsertOpts puts the job on the maintenance queue, one at a time.
func (SyncArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByState: UniqueStates}}
}

// SyncUserArgs are the arguments of a reauth_sync_user job: list one user's
// devices at Podero and record what they say.
type SyncUserArgs struct {
	OrgID  string `json:"org_id" river:"unique"`
	UserID string `json:"user_id" river:"unique"`
	// Kinds are the device kinds to list, the ones the users list says the
	// user has (or does not say); none: every kind. Not part of the job's
	// uniqueness.
	Kinds []DeviceKind `json:"kinds,omitempty"`

	decodeErr error // set by UnmarshalJSON, reported by Validate
}

// UnmarshalJSON decodes strictly but never fails; see DeviceArgs.UnmarshalJSON.
func (a *SyncUserArgs) UnmarshalJSON(b []byte) error {
	type plain SyncUserArgs // without this method
	*a = SyncUserArgs{}
	a.decodeErr = decodeStrict(b, (*plain)(a))
	return nil
}

// Validate reports malformed args.
func (a SyncUserArgs) Validate() error {
	if a.decodeErr != nil {
		return a.decodeErr
	}
	if !IsUUID(a.OrgID) || !IsUUID(a.UserID) {
		return errors.New("org_id and user_id must be UUIDs")
	}
	for i, k := range a.Kinds {
		if !k.Valid() || slices.Contains(a.Kinds[:i], k) {
			return errors.New("kinds must be distinct device kinds: inverter, electric_vehicle, wallbox")
		}
	}
	return nil
}

// Kind is the River job kind.
func (SyncUserArgs) Kind() string { return "reauth_sync_user" }

// InsertOpts puts the job on the maintenance queue, unique per user while unfinished.
func (SyncUserArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: UniqueStates}}
}

// SyncDispatchArgs are the arguments of a reauth_sync_dispatch job: queue
// a reauth_sync_user job for the users due a sync (not synced within
// SYNC_INTERVAL), oldest first, spread over SYNC_INTERVAL within what the
// sync's share of the rate serves until the next run.
type SyncDispatchArgs struct{}

// Kind is the River job kind.
func (SyncDispatchArgs) Kind() string { return "reauth_sync_dispatch" }

// InsertOpts puts the job on the maintenance queue, one at a time.
func (SyncDispatchArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByState: UniqueStates}}
}

// SweepArgs are the arguments of a reauth_sweep job: enqueue a
// reauth_device job for every device that needs one.
type SweepArgs struct{}

// Kind is the River job kind.
func (SweepArgs) Kind() string { return "reauth_sweep" }

// InsertOpts puts the job on the maintenance queue, one at a time.
func (SweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByState: UniqueStates}}
}

// PruneArgs are the arguments of a reauth_prune job: remove the FCM tokens
// not registered again within FCM's staleness window (270 days).
type PruneArgs struct{}

// Kind is the River job kind.
func (PruneArgs) Kind() string { return "reauth_prune" }

// InsertOpts puts the job on the maintenance queue, one at a time.
func (PruneArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByState: UniqueStates}}
}

// Result is what an enqueue did.
type Result struct {
	JobID int64 `json:"job_id"`
	// Duplicate is true when the device already had an unfinished request;
	// JobID is then that request's job. The HTTP API and the CLI also
	// answer a duplicate for a device whose session completed within
	// REAUTH_REPEAT_COOLDOWN: JobID is then the job that made that session,
	// and SessionID the session.
	Duplicate bool  `json:"duplicate"`
	SessionID int64 `json:"session_id,omitempty"`
}

// MaxAttemptsDefault is how many attempts a job gets before it is given up
// (discarded): the default of the service's MAX_ATTEMPTS and of Enqueue.
// With the service's backoff they span about four days.
const MaxAttemptsDefault = 100

// FetchCooldown is River's FetchCooldown for the service's clients and for
// the inserter here. It paces both how often workers fetch a queue and how
// often an inserting client wakes them (one NOTIFY per queue per cooldown):
// River's default, 100 ms, adds about 50 ms to every request's wait. Go
// callers inserting with a River client of their own should set it too.
const FetchCooldown = 5 * time.Millisecond

// inserter is an insert-only River client; it holds no connections, so one
// serves every caller.
var inserter = sync.OnceValues(func() (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(nil), &river.Config{FetchCooldown: FetchCooldown, MaxAttempts: MaxAttemptsDefault})
})

// EnqueueOpts are the settings of EnqueueWith; zero fields take defaults.
type EnqueueOpts struct {
	// MaxAttempts is how many attempts the job gets before it is given up;
	// default MaxAttemptsDefault. The service passes MAX_ATTEMPTS.
	MaxAttempts int
	// Metadata is the jobs' River metadata (a JSON object); default none.
	Metadata []byte
}

func (o EnqueueOpts) insertOpts() *river.InsertOpts {
	return &river.InsertOpts{MaxAttempts: cmp.Or(o.MaxAttempts, MaxAttemptsDefault), Metadata: o.Metadata}
}

// waitingBulkSQL locks the waiting reauth_device jobs at PriorityBulk among
// $1 (the sweep's requests an interactive request met as duplicates), so
// that they are replaced rather than left behind the fleet (see
// EnqueueManyWith). It reads River's columns outside internal/store, which
// holds every other such read, because the root package cannot import the
// store. A job skipped as locked is being fetched to run: it is left alone.
const waitingBulkSQL = `SELECT id FROM river_job
	WHERE id = ANY($1) AND kind = 'reauth_device' AND priority > 1
	AND state IN ('available', 'scheduled', 'retryable', 'pending')
	FOR UPDATE SKIP LOCKED`

// Enqueue requests a reauthentication inside the caller's transaction tx: the
// request exists exactly when tx commits. Invalid args are rejected before
// anything is written; IDs are normalized to lower case. The job gets
// MaxAttemptsDefault attempts.
func Enqueue(ctx context.Context, tx pgx.Tx, args DeviceArgs) (Result, error) {
	return EnqueueWith(ctx, tx, args, EnqueueOpts{})
}

// EnqueueWith is Enqueue with settings.
func EnqueueWith(ctx context.Context, tx pgx.Tx, args DeviceArgs, opts EnqueueOpts) (Result, error) {
	res, err := EnqueueManyWith(ctx, tx, []DeviceArgs{args}, opts)
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// EnqueueMany is Enqueue for many devices in one statement, inside tx.
// Every args is validated before anything is written; the first invalid one
// fails the whole call, naming its index. Results are in args' order; a
// device named twice gets one job, the later result marked a duplicate.
func EnqueueMany(ctx context.Context, tx pgx.Tx, args []DeviceArgs) ([]Result, error) {
	return EnqueueManyWith(ctx, tx, args, EnqueueOpts{})
}

// EnqueueManyWith is EnqueueMany with settings.
func EnqueueManyWith(ctx context.Context, tx pgx.Tx, args []DeviceArgs, opts EnqueueOpts) ([]Result, error) {
	ctx, span, md, err := traceEnqueue(ctx, len(args), opts.Metadata)
	if err != nil {
		return nil, err
	}
	defer span.End()
	opts.Metadata = md
	type device struct {
		kind DeviceKind
		id   string
	}
	first := make(map[device]int, len(args)) // device → its index in params
	at := make([]int, len(args))             // args index → params index
	params := make([]river.InsertManyParams, 0, len(args))
	insertOpts := opts.insertOpts()
	for i, a := range args {
		a = a.Normalized()
		if err := a.Validate(); err != nil {
			if len(args) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		d := device{a.DeviceKind, a.DeviceID}
		j, seen := first[d]
		if !seen {
			j = len(params)
			first[d] = j
			params = append(params, river.InsertManyParams{Args: a, InsertOpts: insertOpts})
		}
		at[i] = j
	}
	client, err := inserter()
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	res, err := client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	var bulk []int64 // waiting sweep requests an interactive request met
	for j, r := range res {
		if r.UniqueSkippedAsDuplicate && r.Job.Priority > PriorityInteractive &&
			params[j].Args.(DeviceArgs).InsertOpts().Priority == PriorityInteractive {
			bulk = append(bulk, r.Job.ID)
		}
	}
	if len(bulk) > 0 {
		if err := replaceBulk(ctx, client, tx, bulk, params, res); err != nil {
			return nil, fmt.Errorf("replace the sweep's requests: %w", err)
		}
	}
	out := make([]Result, len(args))
	done := make([]bool, len(params))
	for i, j := range at {
		out[i] = Result{JobID: res[j].Job.ID, Duplicate: res[j].UniqueSkippedAsDuplicate || done[j]}
		done[j] = true
	}
	return out, nil
}

// replaceBulk replaces the waiting sweep requests among bulk (duplicates of
// interactive requests in params, res their insert results) so that a user
// asking about a device the sweep queued does not wait behind the fleet:
// River cannot change a job's priority, so each is cancelled with
// JobCancelTx (at once: tx holds its lock, so it is not running) and the
// interactive request inserted afresh at PriorityInteractive, with metadata
// {"replaces": <the cancelled job's ID>}. Its res entry becomes the new job,
// not a duplicate. A request skipped because it is being fetched stays a
// duplicate.
func replaceBulk(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, bulk []int64, params []river.InsertManyParams, res []*rivertype.JobInsertResult) error {
	// The insert's ON CONFLICT already locked each duplicate in tx; this
	// reads its state under that lock.
	rows, err := tx.Query(ctx, waitingBulkSQL, bulk)
	if err != nil {
		return err
	}
	waiting, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if len(waiting) == 0 {
		return nil
	}
	replace := make(map[int64]bool, len(waiting))
	for _, id := range waiting {
		if _, err := client.JobCancelTx(ctx, tx, id); err != nil {
			return fmt.Errorf("cancel job %d: %w", id, err)
		}
		replace[id] = true
	}
	var fresh []river.InsertManyParams
	var at []int // fresh index → params index
	for j, r := range res {
		if !r.UniqueSkippedAsDuplicate || !replace[r.Job.ID] {
			continue
		}
		md, err := withReplaces(params[j].InsertOpts.Metadata, r.Job.ID)
		if err != nil {
			return err
		}
		opts := *params[j].InsertOpts
		opts.Metadata = md
		fresh = append(fresh, river.InsertManyParams{Args: params[j].Args, InsertOpts: &opts})
		at = append(at, j)
	}
	inserted, err := client.InsertManyTx(ctx, tx, fresh)
	if err != nil {
		return err
	}
	for k, j := range at {
		res[j] = inserted[k]
	}
	return nil
}

// withReplaces is the JSON object md (nil: empty) with "replaces" set to id.
func withReplaces(md []byte, id int64) ([]byte, error) {
	m := map[string]json.RawMessage{}
	if len(md) > 0 {
		if err := json.Unmarshal(md, &m); err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
	}
	m["replaces"] = json.RawMessage(strconv.FormatInt(id, 10))
	return json.Marshal(m)
}
