package sim

import (
	"encoding/json"
	"io"
	"net/http"
)

// The admin API, for tests and demos: no auth, not counted, no latency, no
// faults, no rate limit.

// handleAdminState is GET /_sim/state.
func (s *Server) handleAdminState(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.State())
}

// handleAdminCounts is GET /_sim/counts.
func (s *Server) handleAdminCounts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Counts())
}

// handleAdminStats is GET /_sim/stats.
func (s *Server) handleAdminStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

// handleAdminFaults is GET /_sim/faults.
func (s *Server) handleAdminFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

// handleAdminSetFaults is PUT /_sim/faults with a JSON Faults: it replaces
// the faults in effect (omitted fields are zero) and answers them, defaults
// filled in.
func (s *Server) handleAdminSetFaults(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	var f Faults
	if err == nil {
		err = json.Unmarshal(body, &f)
	}
	if err == nil {
		err = f.Validate()
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, detail{"invalid faults: " + err.Error()})
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, s.Faults())
}

// handleAdminScript is POST /_sim/devices/{device_id}/script with a JSON
// array of Response: it queues them like Script.
func (s *Server) handleAdminScript(w http.ResponseWriter, r *http.Request) {
	id := normUUID(r.PathValue("device_id"))
	if !s.deviceExists(id) {
		notFound(w)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	var rs []Response
	if err == nil {
		err = json.Unmarshal(body, &rs)
	}
	for i := 0; err == nil && i < len(rs); i++ {
		err = rs[i].validate()
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, detail{"want a JSON array of responses: " + err.Error()})
		return
	}
	s.Script(id, rs...)
	s.mu.Lock()
	queued := len(s.scripts[id])
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"device_id": id, "queued": queued})
}

// handleAdminLapse is POST /_sim/devices/{device_id}/lapse: the device's
// manufacturer connection lapses again. It answers the device's state.
func (s *Server) handleAdminLapse(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := s.devices[normUUID(r.PathValue("device_id"))]
	var out Device
	if d != nil {
		if d.authenticated {
			d.authenticated, d.changedAt = false, s.cfg.Now()
		}
		out = d.snapshot()
	}
	s.mu.Unlock()
	if d == nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deviceExists(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devices[id] != nil
}
