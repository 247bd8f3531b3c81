package authz

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
)

// The helpers below are the transport-neutral parts of "Decisions on the wire", shared by the
// gRPC and HTTP adapters so that both front doors send the same bytes.

// Body is a deny's JSON body: {"error":"...","error_description":"..."}.
func (d *Decision) Body() string {
	b, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{d.ErrorCode, d.Description})
	return string(b)
}

// DenyStatus is the HTTP status of a deny. A status outside 4xx/5xx would reach the client as a
// success or a redirect: it fails closed as 403, Envoy's own default for a deny (envoy-notes R2).
func (d *Decision) DenyStatus() int {
	if d.Status < 400 || d.Status > 599 {
		return http.StatusForbidden
	}
	return d.Status
}

// RetryAfterValue is the Retry-After header value (whole seconds, rounded up), or "" when the
// decision carries none.
func (d *Decision) RetryAfterValue() string {
	if d.RetryAfter <= 0 {
		return ""
	}
	return strconv.FormatInt(int64(math.Ceil(d.RetryAfter.Seconds())), 10)
}
