package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/reauth/reauth/internal/store"
)

// The reminder opt-out (RFC 8058 one-click unsubscribe). A reminder email's
// List-Unsubscribe header names link.UnsubscribeURL; mail clients POST
// "List-Unsubscribe=One-Click" to it without the user seeing a page, which
// is why it carries no CSRF token: the unguessable token is the proof. A
// GET (a click on the URL, a link scanner, a prefetch) changes nothing: it
// shows a page whose button POSTs the same.

// unsubscribeBodyBytes bounds a POST's body: "List-Unsubscribe=One-Click",
// as a form, urlencoded or multipart.
const unsubscribeBodyBytes = 4 << 10

// unsubscribePage answers GET /u/{token}: the opt-out page with its button,
// or, when there is nothing left to stop (stopped before, or the session
// finished), the page saying no reminders will come.
func (s *server) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.unsubscribeSession(w, r, true)
	if !ok {
		return
	}
	if sess.State != store.SessionOpen || sess.RemindersStoppedAt != nil {
		s.optOutPage(w, r, http.StatusOK, pageUnsubscribed, sess.Locale)
		return
	}
	s.optOutPage(w, r, http.StatusOK, pageUnsubscribe, sess.Locale)
}

// unsubscribeTmpl is the opt-out page: the layout, the text and a form
// whose button POSTs to the page's own URL.
var unsubscribeTmpl = newPageTemplate("unsubscribe.html")

// optOutPage writes pageUnsubscribe (with its button) or pageUnsubscribed
// (all is well) in the session's locale. Neither leads back to the
// partner's success or cancel page, which would tell it an outcome of the
// login; the confirmation offers SUPPORT_URL, as the other pages do.
func (s *server) optOutPage(w http.ResponseWriter, r *http.Request, status int, page pageKind, locale string) {
	lang := pageLocale(r, locale)
	text := pageTexts[lang].pages[page]
	d := s.pages.data(lang, "")
	d.Title, d.Text, d.Tone = text.Title, text.Text, "ok"
	tmpl := pageTmpl
	if page == pageUnsubscribe {
		// One thing to do on it: the button.
		d.Tone, d.Content, d.Button, tmpl = "warn", text.Button, nil, unsubscribeTmpl
	}
	s.pages.render(w, status, tmpl, d)
}

// unsubscribe answers POST /u/{token}: it stops the session's reminders
// (see session.StopReminders) and says so, as the localized page to a
// browser (the page's button), as a short text to anyone else (the mail
// client's one-click POST). It succeeds again for reminders stopped before.
func (s *server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	html := wantsHTML(r)
	// The body says nothing the URL does not; read it only so the client
	// is not cut off mid-send.
	r.Body = http.MaxBytesReader(w, r.Body, unsubscribeBodyBytes)
	_ = r.ParseForm()
	sess, ok := s.unsubscribeSession(w, r, html)
	if !ok {
		return
	}
	if _, err := s.sessions.StopReminders(r.Context(), s.cfg.River, sess); err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "stop reminders", slog.Int64("session", sess.ID), slog.Any("error", err))
		if html {
			s.pages.write(w, r, http.StatusInternalServerError, pageError, sess.Locale, "")
		} else {
			writeText(w, http.StatusInternalServerError, "Something went wrong. Please try again in a moment.\n")
		}
		return
	}
	if html {
		s.optOutPage(w, r, http.StatusOK, pageUnsubscribed, sess.Locale)
		return
	}
	writeText(w, http.StatusOK, "Unsubscribed: no more reminders for this link.\n")
}

// unsubscribeSession finds the session of the request's opt-out token, or
// answers 404 (500 on a database error), as a page when html is set, else
// as text, and reports false.
func (s *server) unsubscribeSession(w http.ResponseWriter, r *http.Request, html bool) (store.Session, bool) {
	sess, err := s.sessions.ByUnsubscribeToken(r.Context(), s.cfg.Links, r.PathValue("token"))
	if err == nil {
		return sess, true
	}
	status, page, text := http.StatusNotFound, pageNotFound, "This link is not valid.\n"
	if !errors.Is(err, store.ErrNotFound) {
		s.cfg.Logger.ErrorContext(r.Context(), "look up opt-out token", slog.Any("error", err))
		status, page, text = http.StatusInternalServerError, pageError, "Something went wrong. Please try again in a moment.\n"
	}
	if html {
		s.pages.write(w, r, status, page, "", "")
	} else {
		writeText(w, status, text)
	}
	return store.Session{}, false
}

// wantsHTML reports whether the request comes from a browser showing the
// answer (a form's POST accepts text/html), not a mail client's one-click
// POST in the background.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// writeText answers with a short plain text.
func writeText(w http.ResponseWriter, status int, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}
