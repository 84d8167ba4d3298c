package notify

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRCPTClasses: only codes about the address suppress it; a refusal
// about the message fails this channel for it; the relay's policy,
// authentication, routing and capacity are retried. Nothing without an
// enhanced code suppresses.
func TestRCPTClasses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		code     int
		enhanced string
		want     string
	}{
		{550, "5.1.1", RefusalMailbox}, {550, "5.1.2", RefusalMailbox}, {553, "5.1.3", RefusalMailbox},
		{550, "5.1.10", RefusalMailbox}, {550, "5.2.1", RefusalMailbox},
		{553, "5.1.7", RefusalSystem}, {553, "5.1.8", RefusalSystem}, // the sender's address: MAIL_FROM
		{552, "5.2.2", RefusalMessage}, {552, "5.2.3", RefusalMessage},
		{554, "5.7.1", RefusalSystem}, {550, "5.7.1", RefusalSystem}, {535, "5.7.8", RefusalSystem}, {550, "5.7.26", RefusalSystem},
		{530, "5.7.0", RefusalSystem}, {550, "5.3.0", RefusalSystem}, {554, "5.4.4", RefusalSystem}, {501, "5.5.2", RefusalSystem},
		{550, "5.0.0", RefusalSystem}, {554, "5.6.0", RefusalSystem},
		{550, "", RefusalMessage}, {551, "", RefusalMessage}, {552, "", RefusalMessage}, {553, "", RefusalMessage},
		{554, "", RefusalSystem}, {500, "", RefusalSystem}, {521, "", RefusalSystem},
	} {
		require.Equal(t, tt.want, classifyRCPT(tt.code, tt.enhanced), "%d %s", tt.code, tt.enhanced)
	}
}

// TestEmailRefusals: what Send returns for each kind of refusal at RCPT TO.
func TestEmailRefusals(t *testing.T) {
	t.Parallel()
	s := catcher(t)
	e := newEmail(t, s.URL())
	for i, tt := range []struct {
		code            int
		enhanced, class string
		mailbox, perm   bool
	}{
		{550, "5.1.1", RefusalMailbox, true, true},
		{550, "5.2.1", RefusalMailbox, true, true},
		{552, "5.2.2", RefusalMessage, false, true},
		{554, "5.7.1", RefusalSystem, false, false},
		{550, "5.7.1", RefusalSystem, false, false},
		{550, "", RefusalMessage, false, true},
		{554, "", RefusalSystem, false, false},
	} {
		addr := fmt.Sprintf("r%d@example.com", i)
		s.RejectWith(addr, tt.code, tt.enhanced, "no")
		err := e.Send(ctxT(t), testMessage(fmt.Sprintf("reauth-%d-0", i), addr))
		re, ok := AsRejected(err)
		require.True(t, ok, "%d %s: %v", tt.code, tt.enhanced, err)
		require.Equal(t, tt.class, re.Class, "%d %s", tt.code, tt.enhanced)
		require.Equal(t, tt.enhanced, re.Code)
		require.Equal(t, tt.mailbox, re.Mailbox, "%d %s", tt.code, tt.enhanced)
		require.Equal(t, tt.perm, permanent(err), "%d %s", tt.code, tt.enhanced)
		require.Equal(t, addr, re.Address)
		require.Nil(t, re.Broken)
	}
	require.False(t, e.Health().Broken, "7 distinct addresses: fewer than BrokenAfterDefault")
}

// TestEmailChannelBroken: a relay refusing every address, even with
// mailbox codes, makes the channel count as broken from the
// BrokenAfterDefault-th distinct address on: no refusal is then a mailbox
// or permanent one. Accepted messages end it; a healthy relay refusing a
// few addresses of many never counts as broken.
func TestEmailChannelBroken(t *testing.T) {
	t.Parallel()
	s := catcher(t)
	e := newEmail(t, s.URL())
	s.RejectWith("*", 550, "5.1.1", "User unknown")
	send := func(i int) error {
		return e.Send(ctxT(t), testMessage(fmt.Sprintf("reauth-%d-0", i), fmt.Sprintf("u%d@example.com", i)))
	}
	for i := 1; i < BrokenAfterDefault; i++ {
		re, ok := AsRejected(send(i))
		require.True(t, ok)
		require.True(t, re.Mailbox, "refusal %d: not enough addresses yet", i)
		require.Nil(t, re.Broken)
	}
	err := send(BrokenAfterDefault)
	re, ok := AsRejected(err)
	require.True(t, ok)
	require.False(t, re.Mailbox, "nothing is suppressed while the channel is broken")
	require.False(t, permanent(err), "the message is retried")
	require.NotNil(t, re.Broken)
	require.True(t, re.BrokenBegan)
	require.Equal(t, BrokenAfterDefault, re.Broken.Addresses)
	require.Equal(t, "550 5.1.1 User unknown", re.Broken.LastReason)

	re, _ = AsRejected(send(BrokenAfterDefault + 1))
	require.NotNil(t, re.Broken)
	require.False(t, re.BrokenBegan, "it began once")
	h := e.Health()
	require.True(t, h.Broken)
	require.Equal(t, BrokenWindowDefault, h.Window)
	require.False(t, h.Since.IsZero())

	// The relay is fixed: once accepted messages outnumber the refusals,
	// it is over.
	s.RejectWith("*", 0, "", "")
	for i := 0; i <= BrokenAfterDefault+1; i++ {
		require.NoError(t, send(100+i))
	}
	require.False(t, e.Health().Broken)

	// A healthy relay: a few bad addresses among many good ones.
	s2 := catcher(t)
	e2 := newEmail(t, s2.URL())
	for i := range 3 * BrokenAfterDefault {
		require.NoError(t, e2.Send(ctxT(t), testMessage(fmt.Sprintf("reauth-%d-0", i), fmt.Sprintf("ok%d@example.com", i))))
	}
	for i := range BrokenAfterDefault + 2 {
		addr := fmt.Sprintf("bad%d@example.com", i)
		s2.Reject(addr, 550)
		re, ok := AsRejected(e2.Send(ctxT(t), testMessage(fmt.Sprintf("reauth-%d-1", i), addr)))
		require.True(t, ok)
		require.True(t, re.Mailbox, "a bad address among good ones is suppressed")
	}
	require.False(t, e2.Health().Broken)
}

// TestRefusalWatchWindow: refusals older than the window no longer count.
func TestRefusalWatchWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := newRefusalWatch(3, time.Minute, func() time.Time { return now })
	for i := range 3 {
		h, began := w.refused(fmt.Sprintf("a%d@x", i), "550 5.1.1 no")
		require.Equal(t, i == 2, h.Broken)
		require.Equal(t, i == 2, began)
	}
	now = now.Add(61 * time.Second)
	h := w.health()
	require.False(t, h.Broken)
	require.Zero(t, h.Addresses)
	require.Zero(t, h.Refused)
	_, began := w.refused("a0@x", "550 5.1.1 no")
	require.False(t, began)
}

func permanent(err error) bool { return errors.Is(err, ErrPermanent) }
