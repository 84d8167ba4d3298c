package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/podero/sim"
)

// TestSyncRecordsDeviceModel: the sync records what Podero says of a
// device besides its authentication; a request without an email then uses
// the owner's email from the device row, with no users-list call, and its
// message names the device by its make.
func TestSyncRecordsDeviceModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.start(t)

	res, err := b.river.Insert(ctx, reauth.SyncUserArgs{OrgID: b.org, UserID: b.user.ID}, nil)
	require.NoError(t, err)
	b.waitJob(t, res.Job.ID, "completed")

	var named *sim.Device
	for _, d := range b.user.Devices {
		var maker, model, state, extID, owner *string
		var lifecycleErr []byte
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT manufacturer, model, lifecycle_state, lifecycle_error,
				external_device_id, owner_email FROM device WHERE kind = $1 AND id = $2`, d.Kind, d.ID).Scan(
			&maker, &model, &state, &lifecycleErr, &extID, &owner))
		require.Equal(t, d.Manufacturer, deref(maker), "manufacturer of %s", d.ID)
		require.Equal(t, d.Model, deref(model), "model of %s", d.ID)
		require.Equal(t, sim.LifecycleError, deref(state), "the simulator's devices start lapsed")
		var le map[string]any
		require.NoError(t, json.Unmarshal(lifecycleErr, &le))
		require.Equal(t, sim.LifecycleErrorReauth, le["code"])
		require.NotEmpty(t, deref(extID))
		require.Equal(t, b.user.Email, deref(owner))
		if d.Manufacturer != "" && named == nil {
			named = &d
		}
	}
	require.NotNil(t, named, "the seed gives the first user a device with a make")

	// No email in the request nor a contact: the device row's owner email
	// serves, and Podero's user list is not asked for.
	status, out := b.post(t, pipelineToken, b.body(*named))
	require.Equal(t, http.StatusAccepted, status)
	b.waitJob(t, jobID(t, out), "completed")
	msgs, err := b.mails.Wait(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, []string{b.user.Email}, msgs[0].To)
	require.Zero(t, b.sim.Counts()[sim.EndpointListUsers], "no users-list call")
	require.Contains(t, msgs[0].Subject, named.Manufacturer, "the message names the device by its make")
	require.Contains(t, msgs[0].Text, named.Manufacturer)

	// The API shows what the sync recorded.
	req, err := http.NewRequest(http.MethodGet, b.api.URL+"/v1/devices/"+string(named.Kind)+"/"+named.ID, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+pipelineToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var dev map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&dev))
	require.Equal(t, named.Manufacturer, dev["manufacturer"])
	require.Equal(t, sim.LifecycleError, dev["lifecycle_state"])
	require.Equal(t, sim.LifecycleErrorReauth, dev["lifecycle_error"].(map[string]any)["code"])
	require.Equal(t, b.user.Email, dev["owner_email"])
	require.NotEmpty(t, dev["external_device_id"])
}

// TestOwnerEmailOnlyFromRow: a device the sync never saw has no owner email,
// so the users list is asked as before.
func TestOwnerEmailOnlyFromRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.start(t)
	status, out := b.post(t, pipelineToken, b.body(b.device(reauth.Wallbox)))
	require.Equal(t, http.StatusAccepted, status)
	b.waitJob(t, jobID(t, out), "completed")
	msgs, err := b.mails.Wait(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, []string{b.user.Email}, msgs[0].To)
	require.Equal(t, 1, b.sim.Counts()[sim.EndpointListUsers])
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
