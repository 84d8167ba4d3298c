package reauth_test

import (
	"encoding/json"
	"testing"

	"github.com/reauth/reauth"
)

// FuzzDeviceArgs: args from any language decode without error or panic, and
// args that validate survive a round trip and still validate.
func FuzzDeviceArgs(f *testing.F) {
	for _, seed := range []string{good, `null`, `[]`, `{"device_kind":7}`, `{"org_id":"x","extra":1}`,
		`{"org_id":"6F1C2A7E-1D2B-4C3D-8E9F-0A1B2C3D4E5F","user_id":"0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f","device_kind":"wallbox","device_id":"a2314723-06cc-4c2e-8819-118905579c7a","email":"a@b.co","locale":"de","success_url":"https://x.example/y"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var a reauth.DeviceArgs
		if !json.Valid(raw) {
			return // river_job.args is jsonb: invalid JSON never reaches a worker
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("decoding failed instead of leaving it to Validate: %v", err)
		}
		if a.Validate() != nil {
			return
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var again reauth.DeviceArgs
		if err := json.Unmarshal(b, &again); err != nil || again.Validate() != nil || !sameArgs(again, a) {
			t.Fatalf("round trip changed valid args: %s -> %s", raw, b)
		}
	})
}

func sameArgs(x, y reauth.DeviceArgs) bool {
	bx, _ := json.Marshal(x.Normalized())
	by, _ := json.Marshal(y.Normalized())
	return string(bx) == string(by)
}
