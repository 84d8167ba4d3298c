package httpapi

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/hostlist"
	"github.com/reauth/reauth/internal/strictjson"
)

// FuzzDecodeReauthRequest: any POST /v1/reauth body is either refused with a
// message or yields args that pass every check, without panicking.
func FuzzDecodeReauthRequest(f *testing.F) {
	for _, seed := range []string{
		`{"org_id":"6f1c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f","user_id":"0b7e2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f","device_kind":"inverter","device_id":"a2314723-06cc-4c2e-8819-118905579c7a"}`,
		`{"org_id":1}`, `{"colour":"red"}`, `[]`, `{} {}`, `{`, ``, `{"email":"Eve <e@x.y>"}`,
		`{"success_url":"https://partner.example/ok","cancel_url":"javascript:alert(1)"}`,
		`{"DEVICE_ID":"a2314723-06cc-4c2e-8819-118905579c7a"}`, `{"device_id":"x","device_id":"y"}`,
	} {
		f.Add([]byte(seed))
	}
	hosts, _ := hostlist.Parse([]string{"partner.example"})
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/v1/reauth", bytes.NewReader(body))
		var req reauthRequest
		if err := decodeJSON(w, r, &req); err != nil {
			if err.Error() == "" {
				t.Fatal("a refusal must say what is wrong")
			}
			return
		}
		if err := strictjson.ExactKeys(body, &reauthRequest{}); err != nil {
			t.Fatalf("accepted keys job args would refuse: %v", err)
		}
		a, err := reauth.DeviceArgs{OrgID: req.OrgID, UserID: req.UserID, DeviceKind: reauth.DeviceKind(req.DeviceKind),
			DeviceID: req.DeviceID, Email: req.Email, Locale: req.Locale, SuccessURL: req.SuccessURL, CancelURL: req.CancelURL}.Check(hosts)
		if err != nil {
			return
		}
		if !reauth.IsUUID(a.OrgID) || !reauth.IsUUID(a.DeviceID) || !a.DeviceKind.Valid() {
			t.Fatalf("accepted bad args %+v", a)
		}
		if a.SuccessURL != "" && !hosts.AllowsString(a.SuccessURL) {
			t.Fatalf("accepted a success_url off the list: %q", a.SuccessURL)
		}
	})
}
