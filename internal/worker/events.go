package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/notify/webhook"
)

// EventsGiveUpAfterDefault is how long after its creation an event is
// retried while the endpoint answers 401, 403, 404 or a redirect
// (EVENTS_GIVE_UP_AFTER).
const EventsGiveUpAfterDefault = 24 * time.Hour

// EventWorker works reauth_event jobs: it delivers one event to the
// partner's backend. Temporary failures are retried with the usual backoff.
// An endpoint answering 401, 403, 404 or a redirect is as likely being
// deployed, or holding a rotated secret, as gone: the event is retried for
// EventsGiveUpAfter after it was made before it is given up. Any other
// refusal (400, 410, 422, ...) gives the event up at once. A given-up event
// is cancelled with the reason, logged at ERROR and counted
// (reauth_events_given_up_total); so is one whose last attempt failed.
type EventWorker struct {
	river.WorkerDefaults[reauth.EventArgs]
	cfg Config
}

// eventPayload is the body posted, in the Standard Webhooks shape.
type eventPayload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      eventData `json:"data"`
}

type eventData struct {
	SessionID  int64             `json:"session_id,omitempty"`
	OrgID      string            `json:"org_id"`
	UserID     string            `json:"user_id"`
	DeviceKind reauth.DeviceKind `json:"device_kind"`
	DeviceID   string            `json:"device_id"`
	Detail     string            `json:"detail,omitempty"`
	Verified   *bool             `json:"verified,omitempty"` // reauth.completed only
}

// Work posts the event.
func (w *EventWorker) Work(ctx context.Context, job *river.Job[reauth.EventArgs]) error {
	a := job.Args
	if err := a.Validate(); err != nil {
		return river.JobCancel(fmt.Errorf("invalid job args: %w", err))
	}
	if w.cfg.PostEvent == nil {
		return river.JobCancel(errors.New("events are off (EVENTS_WEBHOOK_URL is not set)"))
	}
	err := w.cfg.PostEvent(ctx, a.ID, eventPayload{Type: a.Type, Timestamp: a.OccurredAt, Data: eventData{
		SessionID: a.SessionID, OrgID: a.OrgID, UserID: a.UserID, DeviceKind: a.DeviceKind, DeviceID: a.DeviceID, Detail: a.Detail,
		Verified: a.Verified,
	}})
	if err == nil {
		return nil
	}
	giveUpAfter := cmp.Or(w.cfg.EventsGiveUpAfter, EventsGiveUpAfterDefault)
	if rej, ok := notify.AsRejected(err); ok && webhook.EndpointFault(rej.Status) {
		age := w.cfg.now().Sub(job.CreatedAt)
		if age < giveUpAfter {
			return fmt.Errorf("the events endpoint answered %d for %s; retried until %s after the event (EVENTS_GIVE_UP_AFTER): %s",
				rej.Status, a.ID, giveUpAfter, rej.Reason)
		}
		return w.giveUp(ctx, job, "unreachable", fmt.Errorf("event %s given up after %s (EVENTS_GIVE_UP_AFTER): the events endpoint still answers %d: %w",
			a.ID, age.Round(time.Second), rej.Status, err))
	}
	if errors.Is(err, notify.ErrPermanent) {
		return w.giveUp(ctx, job, "refused", fmt.Errorf("event %s given up: the events endpoint refused it: %w", a.ID, err))
	}
	if job.Attempt >= job.MaxAttempts {
		// River discards the job with this error.
		w.gaveUp(ctx, job, "attempts", fmt.Errorf("event %s given up after %d attempts (MAX_ATTEMPTS): %w", a.ID, job.Attempt, err))
	}
	return err
}

// giveUp cancels the event's job with err, after reporting it (gaveUp).
func (w *EventWorker) giveUp(ctx context.Context, job *river.Job[reauth.EventArgs], reason string, err error) error {
	w.gaveUp(ctx, job, reason, err)
	return river.JobCancel(err)
}

// gaveUp reports an event that is lost: at ERROR and in
// reauth_events_given_up_total{reason}.
func (w *EventWorker) gaveUp(ctx context.Context, job *river.Job[reauth.EventArgs], reason string, err error) {
	w.cfg.Metrics.EventGivenUp(reason)
	jobLogger(ctx, w.cfg.Logger).ErrorContext(ctx, "event given up: the partner's backend will not get it",
		slog.Int64("job_id", job.ID), slog.String("event", job.Args.ID), slog.String("type", job.Args.Type),
		slog.String("reason", reason), slog.Any("error", err))
}
