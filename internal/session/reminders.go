package session

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/store"
)

// ByUnsubscribeToken returns the session of a reminder opt-out token (see
// link.UnsubscribeToken), checked with links; store.ErrNotFound for a token
// that is malformed, names no session, or is not that session's.
func (s Sessions) ByUnsubscribeToken(ctx context.Context, links *link.Signer, token string) (store.Session, error) {
	id, ok := link.UnsubscribeSession(token)
	if !ok || links == nil {
		return store.Session{}, store.ErrNotFound
	}
	sess, err := store.GetSession(ctx, s.Pool, id)
	if err != nil {
		return store.Session{}, err
	}
	if !links.CheckUnsubscribe(token, sess.LinkNonce) {
		return store.Session{}, store.ErrNotFound
	}
	return sess, nil
}

// StopReminders is the user's opt-out of the reminders of sess (POST
// /u/{token}, RFC 8058 one-click unsubscribe), in one transaction: the
// opt-out is recorded on the open session, so no later step is sent or
// scheduled (the notify worker checks it under the same row lock), its
// pending reminders are cancelled, and reauth.reminders_stopped sent. The
// session itself stays open: its link still works. It reports whether this
// stopped anything: false when the reminders were stopped before or the
// session is finished (it has none then); either way none will come.
func (s Sessions) StopReminders(ctx context.Context, client *river.Client[pgx.Tx], sess store.Session) (bool, error) {
	var stopped bool
	var cancelled int64
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if stopped, err = store.StopReminders(ctx, tx, sess.ID); err != nil || !stopped {
			return err
		}
		if cancelled, err = store.CancelReminders(ctx, tx, sess.ID); err != nil {
			return err
		}
		return s.Emit(ctx, client, tx, reauth.EventRemindersStopped, Subject(sess), "")
	})
	if err != nil || !stopped {
		return false, err
	}
	s.logger().InfoContext(ctx, "reminders stopped by the user", slog.Int64("session", sess.ID), slog.Int64("cancelled", cancelled))
	return true, nil
}
