package podero

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth"
)

// The fixtures below follow the shapes in ../shared/podero/NOTES.md ("More
// from Podero's reference pages"), not the simulator's output.

// documentedUsers is a users list: one user with every documented field, one
// with every field null but the id.
const documentedUsers = `[
  {"id": "` + testUser + `", "organization_id": "` + testOrg + `", "role": "user",
   "email": "anna.berger@example.com", "external_user_id": "crm-4711",
   "first_name": "Anna", "last_name": "Berger", "is_onboarded": true, "country": "AT",
   "last_login": "2025-03-01T07:45:12.345678Z", "joined_at": "2024-11-20T10:00:00+01:00",
   "num_inverters": 1, "num_electric_vehicles": 0, "num_wallboxes": 2, "num_heat_pumps": 0},
  {"id": "11111111-2222-4333-8444-555555555555", "organization_id": null, "role": null,
   "email": null, "external_user_id": null, "first_name": null, "last_name": null,
   "is_onboarded": null, "country": null, "last_login": null, "joined_at": null,
   "num_inverters": null, "num_electric_vehicles": null, "num_wallboxes": null, "num_heat_pumps": null}
]`

func TestListUsersDocumentedShape(t *testing.T) {
	t.Parallel()

	f := newFake(t, fakeOpts{}, respond(200, documentedUsers))
	users, err := f.client(t, Config{}).ListUsers(context.Background(), testOrg)
	require.NoError(t, err)
	require.Len(t, users, 2)

	onboarded, one, zero, two := true, 1, 0, 2
	lastLogin := time.Date(2025, 3, 1, 7, 45, 12, 345678000, time.UTC)
	joined := time.Date(2024, 11, 20, 9, 0, 0, 0, time.UTC)
	u := users[0]
	require.True(t, lastLogin.Equal(*u.LastLogin))
	require.True(t, joined.Equal(*u.JoinedAt))
	u.LastLogin, u.JoinedAt = nil, nil
	require.Equal(t, User{
		ID: testUser, OrganizationID: testOrg, Role: "user", Email: "anna.berger@example.com",
		ExternalUserID: "crm-4711", FirstName: "Anna", LastName: "Berger", IsOnboarded: &onboarded,
		Country: "AT", NumInverters: &one, NumElectricVehicles: &zero, NumWallboxes: &two, NumHeatPumps: &zero,
	}, u)

	for kind, want := range map[reauth.DeviceKind]int{reauth.Inverter: 1, reauth.ElectricVehicle: 0, reauth.Wallbox: 2} {
		n, known := users[0].DeviceCount(kind)
		require.True(t, known, kind)
		require.Equal(t, want, n, kind)
	}
	_, known := users[0].DeviceCount("heat_pump")
	require.False(t, known, "not a kind the service lists")

	require.Equal(t, User{ID: "11111111-2222-4333-8444-555555555555"}, users[1], "every null is the zero value")
	for _, kind := range reauth.DeviceKinds {
		_, known := users[1].DeviceCount(kind)
		require.False(t, known, "a null count is unknown: list the kind")
	}
}

func TestUserCountsTolerated(t *testing.T) {
	t.Parallel()

	for name, tc := range map[string]struct {
		json string
		want *int
	}{
		"missing":        {`{}`, nil},
		"null":           {`{"num_wallboxes": null}`, nil},
		"zero":           {`{"num_wallboxes": 0}`, ptr(0)},
		"number":         {`{"num_wallboxes": 3}`, ptr(3)},
		"whole float":    {`{"num_wallboxes": 3.0}`, ptr(3)},
		"numeric string": {`{"num_wallboxes": "3"}`, ptr(3)},
		"negative":       {`{"num_wallboxes": -1}`, nil},
		"fraction":       {`{"num_wallboxes": 1.5}`, nil},
		"word":           {`{"num_wallboxes": "many"}`, nil},
		"object":         {`{"num_wallboxes": {"n": 1}}`, nil},
		"huge":           {`{"num_wallboxes": 1e20}`, nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var u User
			require.NoError(t, json.Unmarshal([]byte(tc.json), &u))
			require.Equal(t, tc.want, u.NumWallboxes)
		})
	}
}

// documentedDevices is a device list: a healthy device with every
// documented field, a lapsed one in lifecycle_state error, and one with
// every field null but the id.
const documentedDevices = `[
  {"id": "` + testDevice + `", "is_authenticated": true, "action_needed": false, "actions": [],
   "device_model": {"device_type": {"short_name": "inverter", "long_name": "Solar inverter"},
                    "manufacturer": "SMA", "model": "Sunny Boy 5.0", "year": 2021, "cloud_service": "Sunny Portal"},
   "owner": {"id": "` + testUser + `", "email": "anna.berger@example.com", "first_name": "Anna",
             "last_name": "Berger", "external_id": "crm-4711"},
   "lifecycle_state": "authenticated", "lifecycle_error": null,
   "connection_status": "ok", "monitoring_status": "ok", "steering_status": "warning",
   "external_device_id": "3008123456",
   "created_at": "2024-11-20T10:05:00Z", "updated_at": "2025-03-01T08:00:00.5Z", "deleted_at": null,
   "current_state_last_updated_at": "2025-03-01T08:10:00Z"},
  {"id": "11111111-2222-4333-8444-555555555555", "is_authenticated": false, "action_needed": true,
   "actions": [{"code": "reauthenticate",
                "resolution_link": {"url": "https://connect.podero.com/reconnect?device=1", "required_parameters": ["redirect_uri"]}}],
   "device_model": {"device_type": {"short_name": "ev", "long_name": "Electric vehicle"},
                    "manufacturer": "Tesla", "model": null, "year": null, "cloud_service": null},
   "owner": {"id": "` + testUser + `", "email": null, "first_name": null, "last_name": null, "external_id": null},
   "lifecycle_state": "error",
   "lifecycle_error": {"code": "reauthentication_required", "detail": {"since": "2025-02-28T23:00:00Z"}},
   "connection_status": "error", "monitoring_status": "error", "steering_status": "unknown",
   "external_device_id": null, "created_at": null, "updated_at": null, "deleted_at": null,
   "current_state_last_updated_at": null},
  {"id": "22222222-3333-4444-8555-666666666666", "is_authenticated": null, "action_needed": null,
   "actions": null, "device_model": null, "owner": null, "lifecycle_state": null, "lifecycle_error": null,
   "connection_status": null, "monitoring_status": null, "steering_status": null,
   "external_device_id": null, "created_at": null, "updated_at": null, "deleted_at": null,
   "current_state_last_updated_at": null}
]`

func TestListDevicesDocumentedShape(t *testing.T) {
	t.Parallel()

	f := newFake(t, fakeOpts{}, respond(200, documentedDevices))
	devices, err := f.client(t, Config{}).ListDevices(context.Background(), testOrg, testUser, reauth.Inverter)
	require.NoError(t, err)
	require.Len(t, devices, 3)

	yes, no, year := true, false, 2021
	d := devices[0]
	for _, tc := range []struct {
		got  *time.Time
		want time.Time
	}{
		{d.CreatedAt, time.Date(2024, 11, 20, 10, 5, 0, 0, time.UTC)},
		{d.UpdatedAt, time.Date(2025, 3, 1, 8, 0, 0, 500000000, time.UTC)},
		{d.CurrentStateLastUpdatedAt, time.Date(2025, 3, 1, 8, 10, 0, 0, time.UTC)},
	} {
		require.NotNil(t, tc.got)
		require.True(t, tc.want.Equal(*tc.got), "%v, want %v", *tc.got, tc.want)
	}
	d.CreatedAt, d.UpdatedAt, d.CurrentStateLastUpdatedAt = nil, nil, nil
	require.Equal(t, Device{
		ID: testDevice, IsAuthenticated: &yes, ActionNeeded: &no, Actions: []Action{},
		DeviceModel: DeviceModel{
			DeviceType:   DeviceType{ShortName: "inverter", LongName: "Solar inverter"},
			Manufacturer: "SMA", Model: "Sunny Boy 5.0", Year: &year, CloudService: "Sunny Portal",
		},
		Owner:            Owner{ID: testUser, Email: "anna.berger@example.com", FirstName: "Anna", LastName: "Berger", ExternalID: "crm-4711"},
		LifecycleState:   "authenticated",
		ConnectionStatus: "ok", MonitoringStatus: "ok", SteeringStatus: "warning",
		ExternalDeviceID: "3008123456",
	}, d)

	require.Equal(t, Device{
		ID: "11111111-2222-4333-8444-555555555555", IsAuthenticated: &no, ActionNeeded: &yes,
		Actions: []Action{{Code: "reauthenticate", ResolutionLink: "https://connect.podero.com/reconnect?device=1"}},
		DeviceModel: DeviceModel{
			DeviceType:   DeviceType{ShortName: "ev", LongName: "Electric vehicle"},
			Manufacturer: "Tesla",
		},
		Owner:            Owner{ID: testUser},
		LifecycleState:   "error",
		LifecycleError:   json.RawMessage(`{"code":"reauthentication_required","detail":{"since":"2025-02-28T23:00:00Z"}}`),
		ConnectionStatus: "error", MonitoringStatus: "error", SteeringStatus: "unknown",
	}, devices[1])

	require.Equal(t, Device{ID: "22222222-3333-4444-8555-666666666666"}, devices[2], "every null is the zero value")
}

func TestDeviceFieldsTolerated(t *testing.T) {
	t.Parallel()

	decode := func(t *testing.T, s string) Device {
		t.Helper()
		var d Device
		require.NoError(t, json.Unmarshal([]byte(s), &d))
		return d
	}

	t.Run("times", func(t *testing.T) {
		t.Parallel()
		utc := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
		for in, want := range map[string]*time.Time{
			`"2025-03-01T08:00:00Z"`:      &utc,
			`"2025-03-01T09:00:00+01:00"`: &utc,
			`"2025-03-01T08:00:00"`:       &utc, // no zone: UTC
			`"2025-03-01 08:00:00+00:00"`: &utc,
			`"2025-03-01"`:                ptr(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)),
			`null`:                        nil,
			`""`:                          nil,
			`"yesterday"`:                 new(time.Time), // there, but unreadable
			`1740816000`:                  new(time.Time),
		} {
			d := decode(t, `{"created_at": `+in+`, "deleted_at": `+in+`}`)
			if want == nil {
				require.Nil(t, d.CreatedAt, in)
				require.Nil(t, d.DeletedAt, in)
				continue
			}
			require.NotNil(t, d.CreatedAt, in)
			require.True(t, want.Equal(*d.CreatedAt), "%s: %v", in, *d.CreatedAt)
			require.NotNil(t, d.DeletedAt, "%s: a deleted_at that is there means deleted", in)
		}
	})

	t.Run("resolution link", func(t *testing.T) {
		t.Parallel()
		for in, want := range map[string]string{
			`{"url": "https://connect.podero.com/x", "required_parameters": []}`: "https://connect.podero.com/x",
			`{"url": null}`:                "",
			`"https://app.podero.com/fix"`: "https://app.podero.com/fix",
			`null`:                         "",
		} {
			d := decode(t, `{"actions": [{"code": "reauthenticate", "resolution_link": `+in+`}]}`)
			require.Equal(t, []Action{{Code: "reauthenticate", ResolutionLink: want}}, d.Actions, in)
		}
		var d Device
		require.Error(t, json.Unmarshal([]byte(`{"actions": [{"resolution_link": 5}]}`), &d))
	})

	t.Run("year", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, ptr(2022), decode(t, `{"device_model": {"year": "2022"}}`).DeviceModel.Year)
		require.Nil(t, decode(t, `{"device_model": {"year": "n/a"}}`).DeviceModel.Year)
	})

	t.Run("lifecycle error", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, json.RawMessage(`"reauthentication_required"`),
			decode(t, `{"lifecycle_error": "reauthentication_required"}`).LifecycleError)
		big := `{"lifecycle_error": {"detail": "` + strings.Repeat("x", MaxLifecycleErrorBytes) + `"}}`
		got := decode(t, big).LifecycleError
		require.True(t, json.Valid(got))
		require.Equal(t, `"lifecycle_error of 2061 bytes, not kept"`, string(got))
	})

	t.Run("wrong id is malformed", func(t *testing.T) {
		t.Parallel()
		var d Device
		require.Error(t, json.Unmarshal([]byte(`{"id": 1}`), &d))
		require.Error(t, json.Unmarshal([]byte(`{"device_model": {"manufacturer": 5}}`), &d))
	})
}

func ptr[T any](v T) *T { return &v }
