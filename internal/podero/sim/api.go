package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/reauth/reauth"
)

// fieldError is one entry of a Django Ninja (pydantic) 422 "detail" list.
type fieldError struct {
	Type  string   `json:"type"`
	Loc   []string `json:"loc"`
	Msg   string   `json:"msg"`
	Input any      `json:"input,omitempty"`
}

// validationFailed answers Django Ninja's 422.
func validationFailed(w http.ResponseWriter, errs []fieldError) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": errs})
}

// pathUUIDs checks that the named path parameters are UUIDs and returns them
// lower-cased, with one error per bad parameter.
func pathUUIDs(r *http.Request, names ...string) ([]string, []fieldError) {
	var ids []string
	var errs []fieldError
	for _, name := range names {
		v := r.PathValue(name)
		if !reauth.IsUUID(v) {
			errs = append(errs, fieldError{Type: "uuid_parsing", Loc: []string{"path", name}, Msg: "Input should be a valid UUID", Input: v})
		}
		ids = append(ids, normUUID(v))
	}
	return ids, errs
}

// writeFound answers v, or Not Found when found is false.
func writeFound(w http.ResponseWriter, found bool, v any) {
	if !found {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// authorizedPath answers 401 to a request without a valid token, then 422
// to one whose named path parameters are not UUIDs (Django Ninja's order),
// and returns the parameters lower-cased; ok is false when it has answered.
func (s *Server) authorizedPath(w http.ResponseWriter, r *http.Request, names ...string) (ids []string, ok bool) {
	if !s.authorized(w, r) {
		return nil, false
	}
	ids, errs := pathUUIDs(r, names...)
	if len(errs) > 0 {
		validationFailed(w, errs)
		return nil, false
	}
	return ids, true
}

// collectionPath is authorizedPath for a route below a device collection:
// first an unknown {collection} is answered 404 (see collectionKind). The
// path names org_id and user_id and, with device, the device too (see
// deviceIDParams).
func (s *Server) collectionPath(w http.ResponseWriter, r *http.Request, device bool) (kind reauth.DeviceKind, ids []string, ok bool) {
	if kind, ok = collectionKind(w, r); !ok {
		return "", nil, false
	}
	names := []string{"org_id", "user_id"}
	if device {
		names = deviceIDParams(r, kind)
	}
	ids, ok = s.authorizedPath(w, r, names...)
	return kind, ids, ok
}

// collectionKind is the device kind the path's {collection} names; an
// unknown collection is no route, answered 404 here (before auth, as in
// Podero), and ok is false.
func collectionKind(w http.ResponseWriter, r *http.Request) (reauth.DeviceKind, bool) {
	kind, ok := kindOf(r.PathValue("collection"))
	if !ok {
		notFound(w)
	}
	return kind, ok
}

// deviceIDParams names a device request's path parameters: org_id, user_id
// and the device's, which it sets from {device_id}, so that errors name it
// as Podero's OpenAPI does.
func deviceIDParams(r *http.Request, kind reauth.DeviceKind) []string {
	r.SetPathValue(deviceParam(kind), r.PathValue("device_id"))
	return []string{"org_id", "user_id", deviceParam(kind)}
}

// deviceParam is the name of a kind's device id path parameter in Podero's
// OpenAPI: inverter_id, electric_vehicle_id, wallbox_id.
func deviceParam(k reauth.DeviceKind) string { return string(k) + "_id" }

// apiUser is a user as the partner API lists it: Podero's documented
// fields (deleted_at too, which the service reads when present).
type apiUser struct {
	ID                  string  `json:"id"`
	OrganizationID      string  `json:"organization_id"`
	Role                string  `json:"role"`
	Email               string  `json:"email"`
	ExternalUserID      string  `json:"external_user_id"`
	FirstName           string  `json:"first_name"`
	LastName            string  `json:"last_name"`
	IsOnboarded         bool    `json:"is_onboarded"`
	Country             string  `json:"country"`
	LastLogin           string  `json:"last_login"`
	JoinedAt            string  `json:"joined_at"`
	NumInverters        int     `json:"num_inverters"`
	NumElectricVehicles int     `json:"num_electric_vehicles"`
	NumWallboxes        int     `json:"num_wallboxes"`
	NumHeatPumps        int     `json:"num_heat_pumps"`
	DeletedAt           *string `json:"deleted_at"`
}

// apiAction is an item of a device's actions.
type apiAction struct {
	Code           string            `json:"code"`
	ResolutionLink apiResolutionLink `json:"resolution_link"`
}

// apiResolutionLink is an action's resolution_link.
type apiResolutionLink struct {
	URL                string   `json:"url"`
	RequiredParameters []string `json:"required_parameters"`
}

// apiDevice is a device as the partner API shows it: Podero's documented
// fields, and a name.
type apiDevice struct {
	ID                        string             `json:"id"`
	Name                      string             `json:"name"`
	IsAuthenticated           bool               `json:"is_authenticated"`
	ActionNeeded              bool               `json:"action_needed"`
	Actions                   []apiAction        `json:"actions"`
	DeviceModel               apiDeviceModel     `json:"device_model"`
	Owner                     apiOwner           `json:"owner"`
	LifecycleState            string             `json:"lifecycle_state"`
	LifecycleError            *apiLifecycleError `json:"lifecycle_error"`
	ConnectionStatus          string             `json:"connection_status"`
	MonitoringStatus          string             `json:"monitoring_status"`
	SteeringStatus            string             `json:"steering_status"`
	ExternalDeviceID          string             `json:"external_device_id"`
	CreatedAt                 string             `json:"created_at"`
	UpdatedAt                 string             `json:"updated_at"`
	DeletedAt                 *string            `json:"deleted_at"`
	CurrentStateLastUpdatedAt string             `json:"current_state_last_updated_at"`
}

// apiDeviceModel is a device's device_model; unknown parts are null.
type apiDeviceModel struct {
	DeviceType   apiDeviceType `json:"device_type"`
	Manufacturer *string       `json:"manufacturer"`
	Model        *string       `json:"model"`
	Year         *int          `json:"year"`
	CloudService *string       `json:"cloud_service"`
}

type apiDeviceType struct {
	ShortName string `json:"short_name"`
	LongName  string `json:"long_name"`
}

// apiOwner is a device's owner.
type apiOwner struct {
	ID         string `json:"id"`
	Email      string `json:"email"`
	FirstName  string `json:"first_name"`
	LastName   string `json:"last_name"`
	ExternalID string `json:"external_id"`
}

// apiLifecycleError is the lifecycle_error of a device in lifecycle_state
// error. Podero documents only that it is the error's metadata; this shape
// is the simulator's.
type apiLifecycleError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Lifecycle states and the lapsed device's lifecycle_error code.
const (
	LifecycleAuthenticated  = "authenticated"
	LifecycleError          = "error"
	LifecycleErrorReauth    = "reauthentication_required"
	lifecycleErrorReauthMsg = "The manufacturer connection has lapsed. The user needs to reconnect their device."
)

// view is d as the API shows it, owned by u; a lapsed device is in
// lifecycle_state error and asks to be reauthenticated at base +
// "/connect/device/<id>". The caller holds s.mu.
func (d *device) view(base string) apiDevice {
	u := d.owner
	v := apiDevice{
		ID:              d.id,
		Name:            d.name,
		IsAuthenticated: true,
		Actions:         []apiAction{},
		DeviceModel: apiDeviceModel{
			DeviceType:   apiDeviceType{ShortName: deviceTypes[d.kind][0], LongName: deviceTypes[d.kind][1]},
			Manufacturer: strOrNull(d.product.manufacturer),
			Model:        strOrNull(d.product.model),
			CloudService: strOrNull(d.product.cloudService),
		},
		Owner:            apiOwner{ID: u.id, Email: u.email, FirstName: u.firstName, LastName: u.lastName, ExternalID: u.externalID},
		LifecycleState:   LifecycleAuthenticated,
		ConnectionStatus: "ok",
		MonitoringStatus: "ok",
		SteeringStatus:   "ok",
		ExternalDeviceID: d.externalID,
		CreatedAt:        d.createdAt.Format(time.RFC3339),
		UpdatedAt:        d.changedAt.Format(time.RFC3339),
		// A connected device's state is refreshed every 5 minutes; a lapsed
		// one's stopped when it lapsed.
		CurrentStateLastUpdatedAt: d.now().UTC().Truncate(5 * time.Minute).Format(time.RFC3339),
	}
	if d.product.year != 0 {
		v.DeviceModel.Year = &d.product.year
	}
	if !d.authenticated {
		v.IsAuthenticated = false
		v.ActionNeeded = true
		v.Actions = []apiAction{{Code: "reauthenticate", ResolutionLink: apiResolutionLink{
			URL: base + "/connect/device/" + d.id, RequiredParameters: []string{},
		}}}
		v.LifecycleState = LifecycleError
		v.LifecycleError = &apiLifecycleError{Code: LifecycleErrorReauth, Message: lifecycleErrorReauthMsg}
		v.ConnectionStatus, v.MonitoringStatus, v.SteeringStatus = "error", "error", "error"
		v.CurrentStateLastUpdatedAt = d.changedAt.Format(time.RFC3339)
	}
	return v
}

// handleListUsers is GET /org/{org_id}/users: a plain array of the org's users.
func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) {
	ids, ok := s.authorizedPath(w, r, "org_id")
	if !ok {
		return
	}
	s.mu.Lock()
	o := s.orgByID[ids[0]]
	var out []apiUser
	if o != nil {
		out = []apiUser{}
		for _, u := range o.users {
			out = append(out, u.view())
		}
	}
	s.mu.Unlock()
	writeFound(w, o != nil, out)
}

// view is u as the API shows it; the caller holds s.mu.
func (u *user) view() apiUser {
	v := apiUser{
		ID:             u.id,
		OrganizationID: u.orgID,
		Role:           "user",
		Email:          u.email,
		ExternalUserID: u.externalID,
		FirstName:      u.firstName,
		LastName:       u.lastName,
		IsOnboarded:    true,
		Country:        u.country,
		LastLogin:      u.lastLogin.Format(time.RFC3339),
		JoinedAt:       u.createdAt.Format(time.RFC3339),
	}
	for _, d := range u.devices {
		switch d.kind {
		case reauth.Inverter:
			v.NumInverters++
		case reauth.ElectricVehicle:
			v.NumElectricVehicles++
		case reauth.Wallbox:
			v.NumWallboxes++
		}
	}
	return v
}

// handleUserByExtID is GET /org/{org_id}/users/by-ext-id/{external_id}: the
// org's user with that external_user_id, or 404.
func (s *Server) handleUserByExtID(w http.ResponseWriter, r *http.Request) {
	ids, ok := s.authorizedPath(w, r, "org_id")
	if !ok {
		return
	}
	ext := r.PathValue("external_id")
	s.mu.Lock()
	var out *apiUser
	if o := s.orgByID[ids[0]]; o != nil {
		for _, u := range o.users {
			if u.externalID == ext {
				v := u.view()
				out = &v
				break
			}
		}
	}
	s.mu.Unlock()
	writeFound(w, out != nil, out)
}

// handleListDevices is GET /org/{org_id}/users/{user_id}/{collection}: a plain
// array of the user's devices of that kind.
func (s *Server) handleListDevices(w http.ResponseWriter, r *http.Request) {
	kind, ids, ok := s.collectionPath(w, r, false)
	if !ok {
		return
	}
	base := s.baseURL(r)
	s.mu.Lock()
	u := s.users[ids[1]]
	var out []apiDevice
	if u != nil && u.orgID == ids[0] {
		out = []apiDevice{}
		for _, d := range u.devices {
			if d.kind == kind {
				out = append(out, d.view(base))
			}
		}
	}
	s.mu.Unlock()
	writeFound(w, out != nil, out)
}

// handleGetDevice is GET /org/{org_id}/users/{user_id}/{collection}/{id}.
func (s *Server) handleGetDevice(w http.ResponseWriter, r *http.Request) {
	kind, ids, ok := s.collectionPath(w, r, true)
	if !ok {
		return
	}
	base := s.baseURL(r)
	s.mu.Lock()
	d := s.findDevice(ids[0], ids[1], kind, ids[2])
	var out apiDevice
	if d != nil {
		out = d.view(base)
	}
	s.mu.Unlock()
	writeFound(w, d != nil, out)
}

// authSessionOutput is AuthSessionOutput; every field is nullable.
type authSessionOutput struct {
	AuthenticationURL *string `json:"authentication_url"`
	DeviceID          *string `json:"device_id"`
	SessionID         *string `json:"session_id"`
}

// handleAuthSession is POST .../{collection}/{id}/auth_session. In Django
// Ninja's order: route (404), auth (401), path and body validation together
// (422, or 400 for a body that is not JSON), then the device (404). A
// scripted answer, if one is queued for the device, replaces the normal one.
func (s *Server) handleAuthSession(w http.ResponseWriter, r *http.Request) {
	kind, ok := collectionKind(w, r)
	if !ok || !s.authorized(w, r) {
		return
	}
	ids, errs := pathUUIDs(r, deviceIDParams(r, kind)...)
	in, bodyErrs, parsed := readAuthSessionInput(r)
	if !parsed {
		writeJSON(w, http.StatusBadRequest, detail{"Cannot parse request body"})
		return
	}
	if errs = append(errs, bodyErrs...); len(errs) > 0 {
		validationFailed(w, errs)
		return
	}

	connect := s.connectURL(r)
	s.mu.Lock()
	d := s.findDevice(ids[0], ids[1], kind, ids[2])
	if d == nil {
		s.mu.Unlock()
		notFound(w)
		return
	}
	script, scripted := s.popScript(d.id)
	if scripted && script.Status != http.StatusOK {
		s.mu.Unlock()
		writeScripted(w, script)
		return
	}
	sess := &session{id: randomUUID(), deviceID: d.id, successURL: in.SuccessURL, cancelURL: in.CancelURL}
	authURL := connect + "/connect/" + sess.id
	out := authSessionOutput{AuthenticationURL: &authURL, DeviceID: &d.id, SessionID: &sess.id}
	if len(script.Null) == 0 {
		// A normal session. A 200 with null fields creates none: its
		// link, if any, leads nowhere.
		s.sessions[sess.id] = sess
		d.sessions++
		s.sessionsCreated++
	}
	s.mu.Unlock()

	for _, f := range script.Null {
		switch f {
		case "authentication_url":
			out.AuthenticationURL = nil
		case "device_id":
			out.DeviceID = nil
		case "session_id":
			out.SessionID = nil
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// authSessionInput is AuthSessionInput; nil stands for absent or null.
type authSessionInput struct {
	SuccessURL *string
	CancelURL  *string
}

// readAuthSessionInput validates the body as pydantic would an
// AuthSessionInput: a JSON object whose success_url and cancel_url are
// strings or null (other fields ignored). parsed is false when the body is
// there but is not JSON at all.
func readAuthSessionInput(r *http.Request) (in authSessionInput, errs []fieldError, parsed bool) {
	const param = "payload" // the name of the body parameter; a guess
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return in, nil, false
	}
	if len(body) == 0 {
		return in, []fieldError{{Type: "missing", Loc: []string{"body", param}, Msg: "Field required"}}, true
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return in, nil, false
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return in, []fieldError{{
			Type: "model_attributes_type", Loc: []string{"body", param},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: v,
		}}, true
	}
	for _, f := range []struct {
		name string
		dst  **string
	}{{"success_url", &in.SuccessURL}, {"cancel_url", &in.CancelURL}} {
		switch x := obj[f.name].(type) {
		case nil:
		case string:
			*f.dst = &x
		default:
			errs = append(errs, fieldError{Type: "string_type", Loc: []string{"body", param, f.name}, Msg: "Input should be a valid string", Input: x})
		}
	}
	return in, errs, true
}

// writeScripted answers a scripted failure.
func writeScripted(w http.ResponseWriter, rs Response) {
	if rs.RetryAfter != "" {
		w.Header().Set("Retry-After", rs.RetryAfter)
	}
	if rs.Body == "" {
		writeJSON(w, rs.Status, detail{http.StatusText(rs.Status)})
		return
	}
	ct := "text/plain; charset=utf-8"
	if json.Valid([]byte(rs.Body)) {
		ct = "application/json"
	} else if strings.HasPrefix(strings.TrimSpace(rs.Body), "<") {
		ct = "text/html; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(rs.Status)
	_, _ = io.WriteString(w, rs.Body)
}
