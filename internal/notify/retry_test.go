package notify

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

// TestRenderRetry: the first message of a fresh link after a login that did
// not take says so, in English and German, email and push, with the link;
// a reminder of it (Retry is set for step 0 only by the worker, but the
// templates do not care) and every other message stay the usual ones. A
// locale without retry_ templates sends the usual message; a partial set is
// an error at start-up.
func TestRenderRetry(t *testing.T) {
	t.Parallel()
	r := newRenderer(t)
	for locale, want := range map[string]struct{ subject, text, push string }{
		"en": {"That did not work: here is a fresh link for your wallbox", "did not reconnect your wallbox", "Please try again"},
		"de": {"Das hat nicht geklappt: ein neuer Link für Ihre Wallbox", "nicht erneuert", "Bitte erneut versuchen"},
	} {
		m := Message{Locale: locale, DeviceKind: reauth.Wallbox, Link: testLink, Retry: true, ExpiresAt: testExpiry}
		out, err := r.Render(m)
		require.NoError(t, err)
		require.Equal(t, want.subject, out.Subject, locale)
		require.Contains(t, out.Text, want.text, locale)
		require.Contains(t, out.Text, testLink, locale)
		require.Contains(t, out.HTML, testLink, locale)
		require.Contains(t, out.HTML, want.text, locale)
		title, body, err := r.RenderPush(m)
		require.NoError(t, err)
		require.Contains(t, title, want.push, locale)
		require.NotEmpty(t, body)

		m.Retry = false
		usual, err := r.Render(m)
		require.NoError(t, err)
		require.NotEqual(t, out.Subject, usual.Subject, locale)
		require.NotContains(t, usual.Text, want.text, locale)
	}

	t.Run("locale without retry templates", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		for _, f := range []string{"subject.txt.tmpl", "body.txt.tmpl", "body.html.tmpl", "push_title.txt.tmpl", "push_body.txt.tmpl", "locale.json"} {
			b, err := embedded.ReadFile("templates/en/" + f)
			require.NoError(t, err)
			writeFile(t, filepath.Join(dir, "sv", f), string(b))
		}
		r, err := NewRenderer(dir)
		require.NoError(t, err)
		out, err := r.Render(Message{Locale: "sv", DeviceKind: reauth.Wallbox, Link: testLink, Retry: true})
		require.NoError(t, err)
		require.Contains(t, out.Text, "has lapsed", "the usual first message")
	})

	t.Run("partial retry set", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "en", "retry_subject.txt.tmpl"), "x\n")
		_, err := NewRenderer(dir)
		require.NoError(t, err, "an override of one file of the embedded set is fine")

		dir = t.TempDir()
		for _, f := range []string{"subject.txt.tmpl", "body.txt.tmpl", "body.html.tmpl", "push_title.txt.tmpl", "push_body.txt.tmpl", "locale.json"} {
			b, err := embedded.ReadFile("templates/en/" + f)
			require.NoError(t, err)
			writeFile(t, filepath.Join(dir, "sv", f), string(b))
		}
		writeFile(t, filepath.Join(dir, "sv", "retry_subject.txt.tmpl"), "x\n")
		_, err = NewRenderer(dir)
		require.ErrorContains(t, err, "retry_")
	})
}
