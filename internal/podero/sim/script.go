package sim

import (
	"fmt"
	"net/http"
)

// Response is a scripted answer of the auth_session endpoint.
//
// A Status other than 200 answers that status with Body (default
// {"detail": "<status text>"}) and, when RetryAfter is set, a Retry-After
// header. Status 200 (or 0) answers a normal success in which the fields
// named in Null ("authentication_url", "device_id", "session_id") are JSON
// null; when any is, no usable session is created.
type Response struct {
	Status     int      `json:"status"`
	Null       []string `json:"null,omitempty"`
	Body       string   `json:"body,omitempty"`
	RetryAfter string   `json:"retry_after,omitempty"`
}

// validate checks rs and defaults Status 0 to 200.
func (rs *Response) validate() error {
	if rs.Status == 0 {
		rs.Status = http.StatusOK
	}
	if rs.Status < 100 || rs.Status > 599 {
		return fmt.Errorf("status %d is not an HTTP status", rs.Status)
	}
	for _, f := range rs.Null {
		switch f {
		case "authentication_url", "device_id", "session_id":
		default:
			return fmt.Errorf("null: unknown field %q (want authentication_url, device_id or session_id)", f)
		}
	}
	return nil
}

// Script queues answers for the next auth_session calls of device deviceID
// (after the device has been found), in order, behind any already queued;
// once they are used up the device behaves normally again. It panics on a
// Response whose Status is not 0 or 100-599 or whose Null names an unknown
// field: a broken test.
func (s *Server) Script(deviceID string, rs ...Response) {
	rs = append([]Response(nil), rs...) // validate sets defaults: leave the caller's copy alone
	for i := range rs {
		rs[i].Null = append([]string(nil), rs[i].Null...)
		if err := rs[i].validate(); err != nil {
			panic("sim: Script: " + err.Error())
		}
	}
	id := normUUID(deviceID)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[id] = append(s.scripts[id], rs...)
}

// popScript takes the next scripted answer of device id; the caller holds s.mu.
func (s *Server) popScript(id string) (Response, bool) {
	q := s.scripts[id]
	if len(q) == 0 {
		return Response{}, false
	}
	if len(q) == 1 {
		delete(s.scripts, id)
	} else {
		s.scripts[id] = q[1:]
	}
	return q[0], true
}
