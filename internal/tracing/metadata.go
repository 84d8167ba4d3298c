package tracing

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.opentelemetry.io/otel/propagation"
)

// mergeMetadata returns the JSON object metadata (empty: {}) with carrier's
// keys set.
func mergeMetadata(metadata []byte, carrier propagation.MapCarrier) ([]byte, error) {
	if len(carrier) == 0 {
		return metadata, nil
	}
	m := map[string]json.RawMessage{}
	if len(metadata) > 0 {
		if err := json.Unmarshal(metadata, &m); err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
	}
	for k, v := range carrier {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m[k] = b
	}
	return json.Marshal(m)
}

// metadataCarrier reads the trace context keys of a job's metadata; false
// when it has none (or is not an object).
func metadataCarrier(metadata []byte) (propagation.MapCarrier, bool) {
	if !bytes.Contains(metadata, []byte(`"traceparent"`)) {
		return nil, false
	}
	var tc struct {
		Traceparent string `json:"traceparent"`
		Tracestate  string `json:"tracestate"`
	}
	if json.Unmarshal(metadata, &tc) != nil || tc.Traceparent == "" {
		return nil, false
	}
	c := propagation.MapCarrier{"traceparent": tc.Traceparent}
	if tc.Tracestate != "" {
		c["tracestate"] = tc.Tracestate
	}
	return c, true
}
