package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/notify"
)

var _ notify.Channel = (*Channel)(nil)

func renderer(t *testing.T) *notify.Renderer {
	t.Helper()
	r, err := notify.NewRenderer("")
	require.NoError(t, err)
	return r
}

func linkMessage() notify.Message {
	return notify.Message{
		Key: "reauth-42-1", OrgID: "org-1", UserID: "user-7", DeviceID: "ev-3",
		Locale: "de-AT", DeviceKind: reauth.ElectricVehicle, Link: "https://reauth.example.com/r/tok_ABC",
		Step: 1, ExpiresAt: time.Date(2030, 3, 4, 6, 6, 0, 0, time.FixedZone("CET", 3600)),
	}
}

func TestChannelSend(t *testing.T) {
	t.Parallel()
	secret := newSecret(t, 32)
	r := newReceiver(t, secret)
	c, err := NewChannel(r.srv.URL+"/push", newSender(t, secret, 0), renderer(t))
	require.NoError(t, err)
	require.Equal(t, "webhook", c.Name())

	require.NoError(t, c.Send(ctxT(t), linkMessage()))
	got := r.requests()
	require.Len(t, got, 1)
	require.NoError(t, got[0].Verified, "the receiver verified the signature")
	require.Equal(t, "reauth-42-1", got[0].Header.Get(HeaderID), "webhook-id is the message key")

	var p LinkPayload
	dec := json.NewDecoder(bytes.NewReader(got[0].Body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&p))
	require.Equal(t, LinkPayload{
		Type: "reauth.link", ID: "reauth-42-1", OrgID: "org-1", UserID: "user-7",
		DeviceKind: "electric_vehicle", DeviceID: "ev-3", Link: "https://reauth.example.com/r/tok_ABC",
		Step: 1, Reminder: true, ExpiresAt: "2030-03-04T05:06:00Z", Locale: "de",
		Title: "Erinnerung: Elektroauto erneut verbinden",
		Body:  p.Body,
		// One device's message lists its one device too.
		Devices: []DevicePayload{{DeviceKind: "electric_vehicle", DeviceID: "ev-3", Link: "https://reauth.example.com/r/tok_ABC", ExpiresAt: "2030-03-04T05:06:00Z"}},
	}, p)
	require.Contains(t, p.Body, "Ihrem Elektroauto")
	require.Contains(t, p.Body, "4. März 2030")

	t.Run("tampered body or wrong secret fails verification", func(t *testing.T) {
		t.Parallel()
		tampered := []byte(string(got[0].Body[:len(got[0].Body)-1]) + ` `)
		tampered = append(tampered, got[0].Body[len(got[0].Body)-1])
		require.JSONEq(t, string(got[0].Body), string(tampered), "the same JSON, other bytes")
		require.ErrorIs(t, Verify(secret, got[0].Header, tampered, time.Minute, time.Now()), ErrSignature)
		require.ErrorIs(t, Verify(newSecret(t, 32), got[0].Header, got[0].Body, time.Minute, time.Now()), ErrSignature)
		require.NoError(t, Verify(secret, got[0].Header, got[0].Body, time.Minute, time.Now()))
	})
}

func TestChannelEnglishFallbackAndNoExpiry(t *testing.T) {
	t.Parallel()
	secret := newSecret(t, 32)
	r := newReceiver(t, secret)
	c, err := NewChannel(r.srv.URL, newSender(t, secret, 0), renderer(t))
	require.NoError(t, err)
	m := linkMessage()
	m.Locale, m.Step, m.Key, m.ExpiresAt, m.DeviceKind = "pl", 0, "reauth-43-0", time.Time{}, reauth.Inverter
	require.NoError(t, c.Send(ctxT(t), m))
	var p map[string]any
	require.NoError(t, json.Unmarshal(r.requests()[0].Body, &p))
	require.Equal(t, "en", p["locale"])
	require.Equal(t, "Reconnect your solar inverter", p["title"])
	require.Equal(t, false, p["reminder"])
	require.EqualValues(t, 0, p["step"])
	require.NotContains(t, p, "expires_at")
}

func TestChannelErrors(t *testing.T) {
	t.Parallel()
	secret := newSecret(t, 32)
	r := newReceiver(t, secret)
	c, err := NewChannel(r.srv.URL, newSender(t, secret, 0), renderer(t))
	require.NoError(t, err)

	r.status.Store(http.StatusGone)
	err = c.Send(ctxT(t), linkMessage())
	require.ErrorIs(t, err, notify.ErrPermanent)
	re, ok := notify.AsRejected(err)
	require.True(t, ok)
	require.Contains(t, re.Reason, "410 Gone")

	r.status.Store(http.StatusServiceUnavailable)
	err = c.Send(ctxT(t), linkMessage())
	require.Error(t, err)
	require.NotErrorIs(t, err, notify.ErrPermanent)

	// The endpoint's own fault (a rotated secret, a deploy, a moved URL) is
	// no refusal of the message: retried, and marked for the worker to
	// report it.
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusFound, http.StatusPermanentRedirect} {
		r.status.Store(int32(status))
		err = c.Send(ctxT(t), linkMessage())
		require.Error(t, err, status)
		require.NotErrorIs(t, err, notify.ErrPermanent, status)
		re, ok := notify.AsRejected(err)
		require.True(t, ok, status)
		require.Equal(t, notify.RefusalSystem, re.Class, status)
		require.Equal(t, status, re.Status)
		require.Contains(t, re.Reason, strconv.Itoa(status))
	}
	// Any other 4xx refuses the message: the next channel is tried.
	for _, status := range []int{http.StatusBadRequest, http.StatusUnprocessableEntity} {
		r.status.Store(int32(status))
		err = c.Send(ctxT(t), linkMessage())
		require.ErrorIs(t, err, notify.ErrPermanent, status)
		re, ok := notify.AsRejected(err)
		require.True(t, ok, status)
		require.Empty(t, re.Class, status)
	}

	before := len(r.requests())
	for name, mutate := range map[string]func(*notify.Message){
		"bad kind": func(m *notify.Message) { m.DeviceKind = "boat" },
		"no link":  func(m *notify.Message) { m.Link = "" },
		"no key":   func(m *notify.Message) { m.Key = "" },
		"key dot":  func(m *notify.Message) { m.Key = "reauth.1" },
	} {
		m := linkMessage()
		mutate(&m)
		require.ErrorIs(t, c.Send(ctxT(t), m), notify.ErrPermanent, name)
	}
	require.Len(t, r.requests(), before, "nothing sent")
}

func TestNewChannel(t *testing.T) {
	t.Parallel()
	s := newSender(t, newSecret(t, 32), 0)
	r := renderer(t)
	_, err := NewChannel("http://hooks.example.com/x", s, r)
	require.Error(t, err)
	_, err = NewChannel("https://hooks.example.com/x", nil, r)
	require.Error(t, err)
	_, err = NewChannel("https://hooks.example.com/x", s, nil)
	require.Error(t, err)
	_, err = NewChannel("https://hooks.example.com/x", s, r)
	require.NoError(t, err)
}
