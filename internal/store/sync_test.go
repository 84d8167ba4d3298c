package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/testdb"
)

// TestRecordSyncedDeviceModel: the sync's make, model, lifecycle, external
// ID and owner email reach the device row and every view of it, and a
// later null clears them.
func TestRecordSyncedDeviceModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	const (
		org  = "0a000000-0000-4000-8000-00000000000a"
		user = "0c000000-0000-4000-8000-00000000000c"
		dev  = "d1000000-0000-4000-8000-000000000001"
	)
	no := false
	synced := SyncedDevice{
		Kind: reauth.Inverter, ID: dev, OrgID: org, UserID: user, IsAuthenticated: &no,
		Manufacturer: "SMA", Model: "Sunny Boy 5.0", LifecycleState: "error",
		LifecycleError:   json.RawMessage(`{"code": "reauthentication_required"}`),
		ExternalDeviceID: "3008123456", OwnerEmail: "anna@example.com",
	}
	_, err := RecordSyncedDevice(ctx, pool, synced)
	require.NoError(t, err)

	v, err := GetDeviceView(ctx, pool, reauth.Inverter, dev)
	require.NoError(t, err)
	require.Equal(t, "SMA", *v.Manufacturer)
	require.Equal(t, "Sunny Boy 5.0", *v.Model)
	require.Equal(t, "error", *v.LifecycleState)
	require.JSONEq(t, `{"code": "reauthentication_required"}`, string(v.LifecycleError))
	require.Equal(t, "3008123456", *v.ExternalDeviceID)
	require.Equal(t, "anna@example.com", *v.OwnerEmail)
	d, err := GetDeviceDetail(ctx, pool, reauth.Inverter, dev)
	require.NoError(t, err)
	require.Equal(t, v.Device, d.Device)

	email, err := DeviceOwnerEmail(ctx, pool, reauth.Inverter, dev, org, user)
	require.NoError(t, err)
	require.Equal(t, "anna@example.com", email)
	email, err = DeviceOwnerEmail(ctx, pool, reauth.Inverter, dev, org, "0c000000-0000-4000-8000-0000000000ff")
	require.NoError(t, err)
	require.Empty(t, email, "another user's device")
	email, err = DeviceOwnerEmail(ctx, pool, reauth.Wallbox, dev, org, user)
	require.NoError(t, err)
	require.Empty(t, email, "no such device")

	// The notify view carries the make and model.
	id, err := CreateSession(ctx, pool, NewSession{DeviceKind: reauth.Inverter, DeviceID: dev,
		PoderoSessionID: "5e000000-0000-4000-8000-000000000005", AuthenticationURL: "https://connect.podero.com/x",
		LinkNonce: []byte{1}, LinkHash: []byte{2}, Locale: "de"})
	require.NoError(t, err)
	nv, err := GetNotifyView(ctx, pool, id, 0)
	require.NoError(t, err)
	require.Equal(t, "SMA", nv.Manufacturer)
	require.Equal(t, "Sunny Boy 5.0", nv.Model)

	// So does a request's view, with the session completed since a time.
	rv, err := ViewRequest(ctx, pool, org, user, reauth.Inverter, dev, "", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, "SMA", rv.Manufacturer)
	require.Equal(t, "Sunny Boy 5.0", rv.Model)
	require.Zero(t, rv.Completed, "the session is open")
	done, err := FinishSession(ctx, pool, id, SessionCompleted, []string{SessionOpen})
	require.NoError(t, err)
	require.True(t, done)
	rv, err = ViewRequest(ctx, pool, org, user, reauth.Inverter, dev, "", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, id, rv.Completed)
	rv, err = ViewRequest(ctx, pool, org, user, reauth.Inverter, dev, "", time.Time{})
	require.NoError(t, err)
	require.Zero(t, rv.Completed, "not looked for")
	rv, err = ViewRequest(ctx, pool, org, user, reauth.Inverter, dev, "", time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Zero(t, rv.Completed, "completed before the time")
	rv, err = ViewRequest(ctx, pool, org, user, reauth.Wallbox, dev, "", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Zero(t, rv.Completed, "another device")
	require.Empty(t, rv.Manufacturer)

	// Podero says null now: so does the row.
	_, err = RecordSyncedDevice(ctx, pool, SyncedDevice{Kind: reauth.Inverter, ID: dev, OrgID: org, UserID: user,
		IsAuthenticated: &no, LifecycleError: json.RawMessage(`null`)})
	require.NoError(t, err)
	v, err = GetDeviceView(ctx, pool, reauth.Inverter, dev)
	require.NoError(t, err)
	require.Nil(t, v.Manufacturer)
	require.Nil(t, v.Model)
	require.Nil(t, v.LifecycleState)
	require.Nil(t, v.LifecycleError)
	require.Nil(t, v.ExternalDeviceID)
	require.Nil(t, v.OwnerEmail)
	raw, err := json.Marshal(v.Device)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"lifecycle_error":null`)
	nv, err = GetNotifyView(ctx, pool, id, 0)
	require.NoError(t, err)
	require.Empty(t, nv.Manufacturer)
}
