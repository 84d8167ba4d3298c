package link_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/link"
)

func TestUnsubscribeToken(t *testing.T) {
	t.Parallel()
	s, err := link.NewSigner(bytes.Repeat([]byte("k"), 32))
	require.NoError(t, err)
	other, err := link.NewSigner(bytes.Repeat([]byte("o"), 32))
	require.NoError(t, err)
	nonce := link.NewNonce()

	tok := s.UnsubscribeToken(42, nonce)
	require.Equal(t, tok, s.UnsubscribeToken(42, nonce), "the same in every retried message")
	require.NotEqual(t, s.Token(nonce), tok, "not the login link's token")
	require.False(t, link.WellFormed(tok), "nor usable as one")
	id, ok := link.UnsubscribeSession(tok)
	require.True(t, ok)
	require.Equal(t, int64(42), id)
	require.True(t, s.CheckUnsubscribe(tok, nonce))

	require.False(t, s.CheckUnsubscribe(tok, link.NewNonce()), "another session's nonce")
	require.False(t, other.CheckUnsubscribe(tok, nonce), "another secret")
	require.False(t, s.CheckUnsubscribe(s.UnsubscribeToken(43, nonce)[:11]+tok[11:], nonce), "another session's ID")
	for _, bad := range []string{"", "x", strings.Repeat("A", 54), tok + "A", tok[:53], tok[:53] + "!"} {
		if id, ok := link.UnsubscribeSession(bad); ok {
			require.False(t, s.CheckUnsubscribe(bad, nonce), "%q names session %d", bad, id)
		}
	}
	// One spelling per token: the last character's unused bits must be 0.
	last := tok[len(tok)-1]
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
		if byte(c) != last {
			require.False(t, s.CheckUnsubscribe(tok[:len(tok)-1]+string(c), nonce), "%c", c)
		}
	}
	require.Equal(t, "https://r.example/u/"+tok, link.UnsubscribeURL("https://r.example", tok))
}
