package mailcatch

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	s := start(t)
	web := httptest.NewServer(s.Handler())
	t.Cleanup(web.Close)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(web.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}

	resp, body := get("/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "No emails yet")

	require.NoError(t, send(t, s, "", "noreply@example.com", []string{"user@example.com"}, multipartMsg))
	require.NoError(t, send(t, s, "", "noreply@example.com", []string{"other@example.com"},
		"Subject: <b>second</b>\n\n<script>alert(1)</script> plain text only\n"))

	// The list: newest first, every field escaped.
	resp, body = get("/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	require.Contains(t, body, `<a href="/1">Grüße aus München</a>`)
	require.Contains(t, body, `<a href="/2">&lt;b&gt;second&lt;/b&gt;</a>`)
	require.Less(t, strings.Index(body, `id="msg-2"`), strings.Index(body, `id="msg-1"`), "newest first")
	require.Contains(t, body, "user@example.com")

	// One message: envelope, the HTML in a sandboxed frame, the text.
	resp, body = get("/1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "<h1>Grüße aus München</h1>")
	require.Contains(t, body, `sandbox="allow-popups allow-popups-to-escape-sandbox" src="/1/html"`)
	require.Contains(t, body, "https://reauth.example.com/r/abc?x=1&amp;y=2")
	require.Contains(t, body, "&lt;reauth-42-0@example.com&gt;")

	// The HTML part itself, sandboxed, its links opening in a new tab.
	resp, body = get("/1/html")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "sandbox allow-popups allow-popups-to-escape-sandbox;")
	require.NotContains(t, resp.Header.Get("Content-Security-Policy"), "allow-scripts")
	require.True(t, strings.HasPrefix(body, `<base target="_blank">`))
	require.Contains(t, body, `<a href="https://reauth.example.com/r/abc">go</a>`)

	// A text-only message has no frame; its text is escaped.
	_, body = get("/2")
	require.NotContains(t, body, "<iframe")
	require.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt; plain text only")
	require.NotContains(t, body, "<script>")

	for _, path := range []string{"/0", "/3", "/x", "/3/html", "/-1/html"} {
		resp, _ := get(path)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
}
