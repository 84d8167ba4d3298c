package notify

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

var _ Channel = (*Email)(nil)

func TestEmailRecipientRejected(t *testing.T) {
	t.Parallel()

	t.Run("550 names the address", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		s.Reject("gone@example.com", 550)
		e := newEmail(t, s.URL())
		err := e.Send(ctxT(t), testMessage("reauth-5-0", "gone@example.com"))
		require.ErrorIs(t, err, ErrPermanent)
		re, ok := AsRejected(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, &RejectedError{
			Channel: "email", Address: "gone@example.com", Mailbox: true, Class: RefusalMailbox, Code: "5.1.1",
			Reason: "550 5.1.1 mailcatch: recipient rejected", Permanent: true,
		}, re)
		require.Contains(t, err.Error(), "gone@example.com")
		require.Contains(t, err.Error(), "550 5.1.1")
	})

	t.Run("with a password in the URL", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		s.Reject("gone@example.com", 553)
		e := newEmail(t, "smtp://mailer:"+testPassword+"@"+s.Addr())
		err := e.Send(ctxT(t), testMessage("reauth-5-0", "gone@example.com"))
		require.ErrorIs(t, err, ErrPermanent)
		re, ok := AsRejected(err)
		require.True(t, ok)
		require.Equal(t, "gone@example.com", re.Address)
		require.Equal(t, "553 5.1.1 mailcatch: recipient rejected", re.Reason)
		require.NotContains(t, err.Error(), testPassword)
	})

	t.Run("4xx is not a rejection", func(t *testing.T) {
		t.Parallel()
		s := catcher(t)
		s.Reject("busy@example.com", 452)
		e := newEmail(t, s.URL())
		err := e.Send(ctxT(t), testMessage("reauth-5-0", "busy@example.com"))
		require.Error(t, err)
		_, ok := AsRejected(err)
		require.False(t, ok)
		require.NotErrorIs(t, err, ErrPermanent)
	})

	t.Run("invalid message is no rejection", func(t *testing.T) {
		t.Parallel()
		e := newEmail(t, catcher(t).URL())
		err := e.Send(ctxT(t), testMessage("reauth-1-0", "not an address"))
		require.ErrorIs(t, err, ErrPermanent)
		_, ok := AsRejected(err)
		require.False(t, ok)
	})
}

// TestScrubKeepsRejected: when the password has to be scrubbed from an
// error's text, its RejectedError survives, scrubbed too.
func TestScrubKeepsRejected(t *testing.T) {
	t.Parallel()
	e := &Email{pass: "p@ss/w rd"}
	re := &RejectedError{Channel: "email", Address: "u@example.com", Reason: "550 5.7.1 relay p@ss/w rd denied", Permanent: true}
	err := e.scrub(fmt.Errorf("notify: email k: %w", re))
	require.NotContains(t, err.Error(), "p@ss")
	require.ErrorIs(t, err, ErrPermanent)
	got, ok := AsRejected(err)
	require.True(t, ok)
	require.NotSame(t, re, got)
	require.Equal(t, "u@example.com", got.Address)
	require.Equal(t, "550 5.7.1 relay xxxxx denied", got.Reason)
	require.True(t, got.Permanent)

	// Without the password in it, the error is returned as it is.
	plain := fmt.Errorf("notify: email k: %w", &RejectedError{Channel: "email", Address: "u@example.com", Permanent: true})
	require.Same(t, plain, e.scrub(plain))
}

func TestRejectedError(t *testing.T) {
	t.Parallel()
	perm := &RejectedError{Channel: "push", Tokens: []string{"a", "b"}, Reason: "UNREGISTERED", Permanent: true}
	require.ErrorIs(t, perm, ErrPermanent)
	require.Equal(t, "notify: push rejected 2 FCM token(s) unregistered: UNREGISTERED", perm.Error())

	delivered := &RejectedError{Channel: "push", Tokens: []string{"a"}, Reason: "UNREGISTERED", Delivered: true}
	require.NotErrorIs(t, delivered, ErrPermanent)
	require.Contains(t, delivered.Error(), "delivered to the other tokens")

	none := &RejectedError{Channel: "push", Reason: "no FCM tokens", Permanent: true}
	require.Equal(t, "notify: push rejected the message: no FCM tokens", none.Error())

	wrapped := fmt.Errorf("outer: %w", errors.Join(errors.New("x"), perm))
	got, ok := AsRejected(wrapped)
	require.True(t, ok)
	require.Same(t, perm, got)
	_, ok = AsRejected(errors.New("plain"))
	require.False(t, ok)
}
