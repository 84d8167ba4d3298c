package notify

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEmailListUnsubscribe: a reminder with an opt-out URL carries the RFC
// 8058 headers, the URL in angle brackets; a message without one
// (the first, transactional) carries neither; a bad URL is refused.
func TestEmailListUnsubscribe(t *testing.T) {
	t.Parallel()
	s := catcher(t)
	e := newEmail(t, s.URL())
	optOut := "https://reauth.example.com/u/" + strings.Repeat("A", 54)

	first := testMessage("reauth-9-0", "user@example.com")
	require.NoError(t, e.Send(ctxT(t), first))
	reminder := testMessage("reauth-9-1", "user@example.com")
	reminder.Step, reminder.Unsubscribe = 1, optOut
	require.NoError(t, e.Send(ctxT(t), reminder))

	msgs := s.Messages()
	require.Len(t, msgs, 2)
	require.Empty(t, msgs[0].Header.Get("List-Unsubscribe"))
	require.Empty(t, msgs[0].Header.Get("List-Unsubscribe-Post"))
	require.Equal(t, "<"+optOut+">", msgs[1].Header.Get("List-Unsubscribe"))
	require.Equal(t, "List-Unsubscribe=One-Click", msgs[1].Header.Get("List-Unsubscribe-Post"))
	// go-mail folds the field before the value (valid RFC 5322 folding,
	// which parsers undo), never inside the URL.
	require.Contains(t, string(msgs[1].Raw), "<"+optOut+">\r\n", "the URL in one piece")

	for _, bad := range []string{"javascript:alert(1)", "mailto:x@example.com", "https://", "::"} {
		m := testMessage("reauth-9-2", "user@example.com")
		m.Step, m.Unsubscribe = 2, bad
		err := e.Send(ctxT(t), m)
		require.True(t, errors.Is(err, ErrPermanent), "%q: %v", bad, err)
	}
	require.Len(t, s.Messages(), 2)
}

// TestRenderUnsubscribeLink: a reminder with an opt-out URL links it
// visibly, in its language, in the text and the HTML part; a message
// without one renders as before.
func TestRenderUnsubscribeLink(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	optOut := "https://reauth.example.com/u/" + strings.Repeat("B", 54)
	for locale, words := range map[string][2]string{
		"en": {"Don't want these reminders? Stop them here: " + optOut, ">Stop these reminders</a>"},
		"de": {"Keine Erinnerungen mehr erhalten? Hier abbestellen: " + optOut, ">Diese Erinnerungen abbestellen</a>"},
	} {
		m := testMessage("reauth-9-1", "user@example.com")
		m.Locale, m.Step = locale, 1
		plain, err := r.Render(m)
		require.NoError(t, err)
		m.Unsubscribe = optOut
		got, err := r.Render(m)
		require.NoError(t, err)
		require.Contains(t, got.Text, words[0], locale)
		require.Contains(t, got.HTML, `<a href="`+optOut+`"`, locale)
		require.Contains(t, got.HTML, words[1], locale)
		require.NotContains(t, plain.Text, "/u/", locale)
		require.NotContains(t, plain.HTML, "/u/", locale)
		require.Equal(t, plain.Text, strings.Replace(got.Text, "\n\n"+words[0], "", 1), "%s: the rest unchanged", locale)
	}
}
