package podero

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/reauth/reauth"
)

// apiPrefix is the path of every API operation below BaseURL.
const apiPrefix = "/api/partners/v2.0"

// CollectionPath is the path segment of a device kind's collection below a
// user: "inverters", "electric-vehicles" or "wallboxes"; "" for an unknown
// kind.
func CollectionPath(kind reauth.DeviceKind) string {
	switch kind {
	case reauth.Inverter:
		return "inverters"
	case reauth.ElectricVehicle:
		return "electric-vehicles"
	case reauth.Wallbox:
		return "wallboxes"
	}
	return ""
}

// AuthSessionInput is the body of an auth_session request: the partner pages
// the user's browser is sent to after the manufacturer login. An empty URL
// is sent as null (Podero's default).
type AuthSessionInput struct {
	SuccessURL string
	CancelURL  string
}

// MarshalJSON encodes empty URLs as null.
func (in AuthSessionInput) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		SuccessURL *string `json:"success_url"`
		CancelURL  *string `json:"cancel_url"`
	}{nullable(in.SuccessURL), nullable(in.CancelURL)})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// AuthSession is a validated auth_session response: a link that lets the
// user log in to the device's manufacturer again.
type AuthSession struct {
	// AuthenticationURL is an absolute URL on an allowed host (see
	// Config.LinkHosts).
	AuthenticationURL string
	// DeviceID is the requested device id (the response's, when present,
	// matches it).
	DeviceID string
	// SessionID is Podero's UUID of the session.
	SessionID string
}

// authSessionOutput is Podero's AuthSessionOutput: every field nullable.
type authSessionOutput struct {
	AuthenticationURL *string `json:"authentication_url"`
	DeviceID          *string `json:"device_id"`
	SessionID         *string `json:"session_id"`
}

// AuthSession asks Podero for a new authentication session for the device
// deviceID of kind kind, owned by user userID of organization orgID, and
// returns its link.
//
// A 200 is only a success when the link is usable: an authentication_url
// that is present, absolute, https (or BaseURL's scheme on BaseURL's host)
// and on an allowed host; a session_id that is a UUID; and a device_id, when
// present, equal to deviceID. Anything else is KindMalformed.
func (c *Client) AuthSession(ctx context.Context, orgID, userID string, kind reauth.DeviceKind, deviceID string, in AuthSessionInput) (AuthSession, error) {
	const op = OpAuthSession
	if err := checkArgs(op, orgID, userID, kind, deviceID); err != nil {
		return AuthSession{}, err
	}
	path := userPath(orgID, userID) + "/" + CollectionPath(kind) + "/" + url.PathEscape(deviceID) + "/auth_session"

	body, status, err := c.do(ctx, op, http.MethodPost, path, in)
	if err != nil {
		return AuthSession{}, err
	}
	return c.parseAuthSession(body, status, deviceID)
}

// parseAuthSession decodes and checks an auth_session answer for deviceID:
// every field is nullable, and only a complete session with an allowed link
// is accepted.
func (c *Client) parseAuthSession(body []byte, status int, deviceID string) (AuthSession, error) {
	const op = OpAuthSession
	var out authSessionOutput
	if err := json.Unmarshal(body, &out); err != nil {
		return AuthSession{}, malformed(op, status, "response is not an AuthSessionOutput: "+jsonErrorDetail(err), err)
	}

	switch {
	case out.AuthenticationURL == nil || *out.AuthenticationURL == "":
		return AuthSession{}, malformed(op, status, "authentication_url is null or empty", nil)
	case out.SessionID == nil || *out.SessionID == "":
		return AuthSession{}, malformed(op, status, "session_id is null or empty", nil)
	case !reauth.IsUUID(*out.SessionID):
		return AuthSession{}, malformed(op, status, "session_id is not a UUID", nil)
	case out.DeviceID != nil && !reauth.IsUUID(*out.DeviceID):
		return AuthSession{}, malformed(op, status, "device_id is not a UUID", nil)
	case out.DeviceID != nil && !strings.EqualFold(*out.DeviceID, deviceID):
		return AuthSession{}, malformed(op, status, "device_id differs from the requested device", nil)
	}
	if err := c.checkLink(*out.AuthenticationURL); err != nil {
		return AuthSession{}, malformed(op, status, err.Error(), nil)
	}
	return AuthSession{
		AuthenticationURL: *out.AuthenticationURL,
		DeviceID:          deviceID,
		SessionID:         *out.SessionID,
	}, nil
}

// User is a user of a partner organization, as Podero lists it. Every field
// is nullable there: a null or missing string is "", a null or missing time,
// flag or count is nil (see decode.go for what else is tolerated).
type User struct {
	ID             string `json:"id"`
	OrganizationID string `json:"organization_id"`
	// Role is admin, staff, user or guest.
	Role           string `json:"role"`
	Email          string `json:"email"`
	ExternalUserID string `json:"external_user_id"`
	FirstName      string `json:"first_name"`
	LastName       string `json:"last_name"`
	IsOnboarded    *bool  `json:"is_onboarded"`
	// Country is as Podero sends it (no format is documented).
	Country   string     `json:"country"`
	LastLogin *time.Time `json:"last_login"`
	JoinedAt  *time.Time `json:"joined_at"`
	// DeletedAt is not in Podero's list of user fields; a user that carries
	// one anyway is deleted.
	DeletedAt *time.Time `json:"deleted_at"`
	// The user's devices of each kind. Nil means unknown (null, missing or
	// unreadable): list that kind anyway. Use DeviceCount.
	NumInverters        *int `json:"num_inverters"`
	NumElectricVehicles *int `json:"num_electric_vehicles"`
	NumWallboxes        *int `json:"num_wallboxes"`
	NumHeatPumps        *int `json:"num_heat_pumps"`
}

// DeviceCount returns how many devices of kind the user has and whether
// Podero said so; known false (an unknown kind, or no count) means the
// kind must be listed to find out.
func (u User) DeviceCount(kind reauth.DeviceKind) (n int, known bool) {
	var p *int
	switch kind {
	case reauth.Inverter:
		p = u.NumInverters
	case reauth.ElectricVehicle:
		p = u.NumElectricVehicles
	case reauth.Wallbox:
		p = u.NumWallboxes
	}
	if p == nil {
		return 0, false
	}
	return *p, true
}

// ListUsers lists the users of organization orgID, read whole into memory
// (at most MaxListBytes of it). ForEachUser streams the list instead, in
// constant memory whatever its size.
func (c *Client) ListUsers(ctx context.Context, orgID string) ([]User, error) {
	const op = OpListUsers
	if !reauth.IsUUID(orgID) {
		return nil, &Error{Kind: KindInvalid, Op: op, Detail: "org_id must be a UUID"}
	}
	var users []User
	if err := c.getList(ctx, op, apiPrefix+"/org/"+url.PathEscape(orgID)+"/users", &users); err != nil {
		return nil, err
	}
	return users, nil
}

// UserByExternalID finds the user of organization orgID whose
// external_user_id (the partner's own customer ID) is externalID. An
// unknown ID is KindNotFound.
func (c *Client) UserByExternalID(ctx context.Context, orgID, externalID string) (User, error) {
	const op = OpUserByExtID
	if !reauth.IsUUID(orgID) {
		return User{}, &Error{Kind: KindInvalid, Op: op, Detail: "org_id must be a UUID"}
	}
	if err := reauth.ValidateExternalUserID(externalID); err != nil {
		return User{}, &Error{Kind: KindInvalid, Op: op, Detail: err.Error()}
	}
	body, status, err := c.do(ctx, op, http.MethodGet, apiPrefix+"/org/"+url.PathEscape(orgID)+"/users/by-ext-id/"+url.PathEscape(externalID), nil)
	if err != nil {
		return User{}, err
	}
	var u User
	if err := json.Unmarshal(body, &u); err != nil {
		return User{}, malformed(op, status, "response is not a user: "+jsonErrorDetail(err), err)
	}
	if !reauth.IsUUID(u.ID) {
		return User{}, malformed(op, status, "the user's id is not a UUID", nil)
	}
	u.ID = strings.ToLower(u.ID)
	return u, nil
}

// Action is something the user must do about a device, e.g. code
// "reauthenticate" with the link that resolves it.
type Action struct {
	Code string `json:"code"`
	// ResolutionLink is the link's URL: Podero documents
	// resolution_link{url, required_parameters}; a plain string is
	// accepted too.
	ResolutionLink string `json:"resolution_link"`
}

// Device is a device as Podero lists it. Every field is nullable there: a
// null or missing string is "", a null or missing time or flag is nil, a
// null object is its zero value (see decode.go for what else is tolerated).
type Device struct {
	ID string `json:"id"`
	// IsAuthenticated false means the manufacturer connection has lapsed.
	IsAuthenticated *bool       `json:"is_authenticated"`
	ActionNeeded    *bool       `json:"action_needed"`
	Actions         []Action    `json:"actions"`
	DeviceModel     DeviceModel `json:"device_model"`
	Owner           Owner       `json:"owner"`
	// LifecycleState is e.g. authenticated; error comes with
	// LifecycleError, its metadata.
	LifecycleState string `json:"lifecycle_state"`
	// LifecycleError is the JSON Podero sent, nil for null or none, and
	// replaced by a JSON string saying so when larger than
	// MaxLifecycleErrorBytes.
	LifecycleError json.RawMessage `json:"lifecycle_error"`
	// The statuses are ok, warning, error or unknown.
	ConnectionStatus string `json:"connection_status"`
	MonitoringStatus string `json:"monitoring_status"`
	SteeringStatus   string `json:"steering_status"`
	// ExternalDeviceID is the device's ID at its manufacturer or partner.
	ExternalDeviceID string     `json:"external_device_id"`
	CreatedAt        *time.Time `json:"created_at"`
	UpdatedAt        *time.Time `json:"updated_at"`
	DeletedAt        *time.Time `json:"deleted_at"`
	// CurrentStateLastUpdatedAt is when Podero last refreshed the device's
	// state (every 5 to 15 minutes).
	CurrentStateLastUpdatedAt *time.Time `json:"current_state_last_updated_at"`
}

// DeviceModel is what Podero knows of a device's make.
type DeviceModel struct {
	DeviceType   DeviceType `json:"device_type"`
	Manufacturer string     `json:"manufacturer"` // e.g. SMA, Tesla, Easee
	Model        string     `json:"model"`        // e.g. Sunny Boy 5.0, Model 3, Home
	Year         *int       `json:"year"`
	CloudService string     `json:"cloud_service"`
}

// DeviceType names a device's type.
type DeviceType struct {
	ShortName string `json:"short_name"`
	LongName  string `json:"long_name"`
}

// Owner is the user a device belongs to, as the device shows it.
type Owner struct {
	ID         string `json:"id"`
	Email      string `json:"email"`
	FirstName  string `json:"first_name"`
	LastName   string `json:"last_name"`
	ExternalID string `json:"external_id"`
}

// ListDevices lists the devices of kind kind of user userID of organization
// orgID.
func (c *Client) ListDevices(ctx context.Context, orgID, userID string, kind reauth.DeviceKind) ([]Device, error) {
	const op = OpListDevices
	if err := checkArgs(op, orgID, userID, kind, ""); err != nil {
		return nil, err
	}
	var devices []Device
	if err := c.getList(ctx, op, userPath(orgID, userID)+"/"+CollectionPath(kind), &devices); err != nil {
		return nil, err
	}
	return devices, nil
}

// userPath is the path of user userID of organization orgID.
func userPath(orgID, userID string) string {
	return apiPrefix + "/org/" + url.PathEscape(orgID) + "/users/" + url.PathEscape(userID)
}

// checkArgs rejects, before any request, ids that are not UUIDs (they would
// only earn a 422, or change the path) and unknown device kinds. An empty
// deviceID is not checked.
func checkArgs(op, orgID, userID string, kind reauth.DeviceKind, deviceID string) error {
	var problems []string
	if !reauth.IsUUID(orgID) {
		problems = append(problems, "org_id must be a UUID")
	}
	if !reauth.IsUUID(userID) {
		problems = append(problems, "user_id must be a UUID")
	}
	if !kind.Valid() {
		problems = append(problems, "device kind must be inverter, electric_vehicle or wallbox")
	}
	if op == OpAuthSession && !reauth.IsUUID(deviceID) {
		problems = append(problems, "device_id must be a UUID")
	}
	if len(problems) > 0 {
		return &Error{Kind: KindInvalid, Op: op, Detail: strings.Join(problems, "; ")}
	}
	return nil
}

// getList GETs path and decodes the JSON array it returns into out.
func (c *Client) getList(ctx context.Context, op, path string, out any) error {
	body, status, err := c.do(ctx, op, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
		return malformed(op, status, "response is not a JSON array", nil)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return malformed(op, status, "response has the wrong shape: "+jsonErrorDetail(err), err)
	}
	return nil
}

// do makes an authorized API request and returns the body and status of a
// 2xx response. Any other outcome is an *Error. A 401 invalidates the token
// the request carried, and the request is sent once more with a new one.
func (c *Client) do(ctx context.Context, op, method, path string, in any) ([]byte, int, error) {
	var reqBody []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, 0, &Error{Kind: KindInvalid, Op: op, Detail: "encoding the request body failed", Err: err}
		}
		reqBody = b
	}

	for retried := false; ; retried = true {
		token, err := c.accessToken(ctx)
		if err != nil {
			return nil, 0, err
		}
		var (
			body   []byte
			status int
		)
		e := c.guard(ctx, op, func(ctx context.Context) *Error {
			var e *Error
			body, status, e = c.send(ctx, op, method, path, reqBody, token)
			return e
		})
		switch {
		case e == nil:
			return body, status, nil
		case e.Status == http.StatusUnauthorized && !retried:
			c.invalidate(token)
		default:
			return nil, 0, e
		}
	}
}

// send sends one API request with the access token token and returns the
// body and status of a 2xx response with a JSON body.
func (c *Client) send(ctx context.Context, op, method, path string, reqBody []byte, token string) ([]byte, int, *Error) {
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	var r io.Reader
	if reqBody != nil {
		r = bytes.NewReader(reqBody)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.BaseURL+path, r)
	if err != nil {
		return nil, 0, &Error{Kind: KindInvalid, Op: op, Detail: "building the request failed", Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	if reqBody != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	sent := time.Now()
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		c.cfg.Observe(op, 0, time.Since(sent))
		e := transportError(op, err)
		e.Detail = c.redact(e.Detail, token)
		return nil, 0, e
	}
	c.cfg.Observe(op, resp.StatusCode, time.Since(sent))
	traceStatus(ctx, resp.StatusCode)
	// Closed without draining what is left: a body not read to its end is
	// one that was rejected, and its connection is not worth reusing.
	defer func() { _ = resp.Body.Close() }()

	status := resp.StatusCode
	if status < 200 || status > 299 {
		// What could be read is enough to classify the status. Redact before
		// the detail is cut short, so no part of a secret survives the cut.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes))
		body = []byte(c.redact(string(body), token, requestStrings(reqBody)...))
		return nil, 0, statusError(op, status, resp.Header, body, c.cfg.Now())
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return nil, 0, malformed(op, status, trimDetail([]byte("response Content-Type is "+ct+", not JSON")), nil)
	}
	limit := int64(MaxBodyBytes)
	if op == OpListUsers || op == OpListDevices {
		limit = MaxListBytes
	}
	tooLarge := malformed(op, status, fmt.Sprintf("response body larger than %d bytes", limit), nil)
	if resp.ContentLength > limit {
		return nil, 0, tooLarge
	}
	// One byte more than allowed tells a too large body from one that fits.
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		e := transportError(op, err)
		e.Status = status
		e.Detail = c.redact("reading the response failed: "+e.Detail, token)
		return nil, 0, e
	}
	if int64(len(body)) > limit {
		return nil, 0, tooLarge
	}
	return body, status, nil
}

// requestStrings returns the string values of a JSON request body (for
// auth_session, the success and cancel URLs, which carry link tokens).
func requestStrings(reqBody []byte) []string {
	var fields map[string]any
	if json.Unmarshal(reqBody, &fields) != nil {
		return nil
	}
	var out []string
	for _, v := range fields {
		if s, ok := v.(string); ok && len(s) >= 8 {
			out = append(out, s)
		}
	}
	return out
}

// isJSON reports whether the media type of contentType is JSON:
// application/json or any type/subtype+json.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// jsonErrorDetail describes a JSON decoding error without quoting the body.
func jsonErrorDetail(err error) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at offset %d", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q: cannot use JSON %s", typeErr.Field, typeErr.Value)
	}
	return "invalid JSON"
}
