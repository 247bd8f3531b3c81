// Package forwardauth is the HTTP adapter: every request to the forward-auth listener, any
// method and any path, is a check. It serves Envoy's ext_authz http_service, nginx
// auth_request, Caddy forward_auth and Traefik forwardAuth with the same decisions as the gRPC
// adapter: 200 with the identity headers on the response and x-envoy-auth-headers-to-remove
// naming what gRPC's headers_to_remove would, or the deny's status, headers and JSON body.
package forwardauth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/jwtauthz/jwtauthz/pkg/authz"
)

// Decider is the decision core as this adapter sees it.
type Decider interface {
	Decide(ctx context.Context, r *authz.Request) authz.Decision
}

// Options configure a Handler.
type Options struct {
	Logger *slog.Logger
	// MethodHeader, URIHeader and HostHeader name the headers that carry the original
	// request's method, URI and host (server.forward_auth). Empty: the request line and Host,
	// which no client header can change. Name one only when the proxy in front always
	// overwrites it (nginx proxy_set_header, Caddy, Traefik): rules match on these values.
	MethodHeader, URIHeader, HostHeader string
}

// Handler answers forward-auth requests.
type Handler struct {
	d   Decider
	log *slog.Logger
	o   Options
}

// New returns a Handler answering with d.
func New(d Decider, o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Handler{d: d, log: o.Logger, o: o}
}

// HeadersToRemove is Envoy's http_service header naming the upstream headers to strip.
const HeadersToRemove = "x-envoy-auth-headers-to-remove"

// ServeHTTP answers one check. The request body is never read.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := h.d.Decide(r.Context(), h.Request(r))
	if r.Context().Err() != nil {
		// The client went away (or half-closed) mid-check. Returning without writing would
		// make net/http send an empty 200, which a proxy reads as an allow: abort the
		// response instead, so the proxy sees an error and fails closed.
		panic(http.ErrAbortHandler)
	}
	Write(w, d)
}

// Request translates an HTTP check request. The original method, URI and host come from the
// configured headers (which must then be present exactly once), and otherwise from the request
// line and Host, which is what Envoy's http_service sends.
func (h *Handler) Request(r *http.Request) *authz.Request {
	req := &authz.Request{
		Transport: "http",
		Method:    r.Method,
		Host:      r.Host,
		Headers:   make(map[string][]string, len(r.Header)),
	}
	for k, v := range r.Header {
		req.Headers[strings.ToLower(k)] = v
	}
	uri := r.URL.RequestURI()
	for _, c := range []struct {
		name string
		dst  *string
	}{{h.o.MethodHeader, &req.Method}, {h.o.HostHeader, &req.Host}, {h.o.URIHeader, &uri}} {
		if c.name == "" {
			continue
		}
		// A configured header must be there exactly once: falling back to the request line
		// (the auth endpoint's own path) or picking one of two values would let a broken proxy
		// setup, or a client's extra header, choose the rule.
		switch vals := r.Header.Values(c.name); {
		case len(vals) == 0 || vals[0] == "":
			req.Problem = "forward-auth header " + c.name + " is missing: the proxy must set it on every check (server.forward_auth)"
		case len(vals) > 1:
			req.Problem = "forward-auth header " + c.name + " is repeated: the proxy must overwrite it, not append (server.forward_auth)"
		default:
			*c.dst = vals[0]
		}
	}
	req.Path, req.Query, _ = strings.Cut(uri, "?")
	req.RequestID = r.Header.Get("X-Request-Id")
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		req.Principal = r.TLS.PeerCertificates[0].Subject.String()
	}
	return req
}

// Write renders a Decision (contract.md "Decisions on the wire", HTTP form).
func Write(w http.ResponseWriter, d authz.Decision) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if d.Allow {
		for _, sh := range d.SetHeaders {
			hdr.Set(sh.Name, sh.Value)
		}
		if len(d.RemoveHeaders) > 0 {
			hdr.Set(HeadersToRemove, strings.Join(d.RemoveHeaders, ", "))
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	hdr.Set("Content-Type", "application/json")
	if d.Challenge != "" {
		hdr.Set("WWW-Authenticate", d.Challenge)
	}
	if ra := d.RetryAfterValue(); ra != "" {
		hdr.Set("Retry-After", ra)
	}
	w.WriteHeader(d.DenyStatus())
	_, _ = io.WriteString(w, d.Body())
}
