package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/store"
)

// putContact is PUT /v1/contacts/{org_id}/{user_id}: create or change how
// the user is reached. Omitted fields keep what is stored; empty ones clear.
func (s *server) putContact(w http.ResponseWriter, r *http.Request) {
	orgID, userID, ok := contactIDs(w, r)
	if !ok {
		return
	}
	var c reauth.Contact
	if err := decodeJSON(w, r, &c); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c = c.Normalized()
	if err := c.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	saved, err := store.UpsertContact(r.Context(), s.cfg.Pool, orgID, userID, store.ContactUpdate{
		Email: c.Email, Locale: c.Locale, Timezone: c.Timezone, FCMTokens: c.FCMTokens, Channels: c.Channels, OptedOut: c.OptedOut,
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, redactTokens(saved))
}

// getContact is GET /v1/contacts/{org_id}/{user_id}.
func (s *server) getContact(w http.ResponseWriter, r *http.Request) {
	orgID, userID, ok := contactIDs(w, r)
	if !ok {
		return
	}
	c, err := store.GetContact(r.Context(), s.cfg.Pool, orgID, userID)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no contact for this user")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, redactTokens(c))
}

func contactIDs(w http.ResponseWriter, r *http.Request) (orgID, userID string, ok bool) {
	orgID, userID = strings.ToLower(r.PathValue("org_id")), strings.ToLower(r.PathValue("user_id"))
	if !reauth.IsUUID(orgID) || !reauth.IsUUID(userID) {
		writeError(w, http.StatusBadRequest, "org_id and user_id in the path must be UUIDs")
		return "", "", false
	}
	return orgID, userID, true
}

// redactTokens shows FCM tokens by their last 6 characters only: they
// address a user's phone, and answers end up in logs.
func redactTokens(c store.Contact) store.Contact {
	out := make([]string, len(c.FCMTokens))
	for i, t := range c.FCMTokens {
		out[i] = "…" + t[max(0, len(t)-6):]
	}
	c.FCMTokens = out
	return c
}

// getSuppression is GET /v1/suppressions/{email}: whether email is on the
// suppression list, and why.
func (s *server) getSuppression(w http.ResponseWriter, r *http.Request) {
	if sup, ok := s.suppression(w, r, store.GetSuppression); ok {
		writeJSON(w, http.StatusOK, sup)
	}
}

// liftSuppression is DELETE /v1/suppressions/{email}: take email off the
// suppression list, so messages go to it again; 404 when it was not on it.
func (s *server) liftSuppression(w http.ResponseWriter, r *http.Request) {
	sup, ok := s.suppression(w, r, store.LiftSuppression)
	if !ok {
		return
	}
	s.cfg.Logger.InfoContext(r.Context(), "suppression lifted", slog.String("reason", sup.Reason))
	writeJSON(w, http.StatusOK, map[string]any{"email": sup.Address, "lifted": true, "reason": sup.Reason, "suppressed_at": sup.CreatedAt})
}

// suppression runs op (store.GetSuppression or store.LiftSuppression) on the
// address the path names and answers 400, 404 or 500 itself; ok is false
// when it has answered.
func (s *server) suppression(w http.ResponseWriter, r *http.Request,
	op func(context.Context, store.DB, string) (store.Suppression, error),
) (sup store.Suppression, ok bool) {
	email := strings.ToLower(strings.TrimSpace(r.PathValue("email")))
	if err := reauth.ValidateEmail(email); err != nil {
		writeError(w, http.StatusBadRequest, "the path must name an email address")
		return sup, false
	}
	sup, err := op(r.Context(), s.cfg.Pool, email)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "the address is not suppressed")
		return sup, false
	}
	if err != nil {
		s.internalError(w, r, err)
		return sup, false
	}
	return sup, true
}
