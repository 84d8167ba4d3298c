package sim

import "net/http"

// LoginDoesNotTake scripts device deviceID's logins to "succeed" without
// taking (on), or to work again (off): the connect page still redirects to
// the session's success URL, but the device stays lapsed, as when a
// manufacturer accepts the login and then fails to hand Podero a working
// connection. It reports whether the device exists.
func (s *Server) LoginDoesNotTake(deviceID string, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[normUUID(deviceID)]
	if d == nil {
		return false
	}
	d.loginNotTaking = on
	return true
}

// handleAdminLoginDoesNotTake is POST
// /_sim/devices/{device_id}/login_does_not_take[?off]: LoginDoesNotTake,
// on unless the query says off. It answers the device's state.
func (s *Server) handleAdminLoginDoesNotTake(w http.ResponseWriter, r *http.Request) {
	id := normUUID(r.PathValue("device_id"))
	if !s.LoginDoesNotTake(id, !r.URL.Query().Has("off")) {
		notFound(w)
		return
	}
	s.mu.Lock()
	out := s.devices[id].snapshot()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}
