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
}

// Handler answers forward-auth requests.
type Handler struct {
	d   Decider
	log *slog.Logger
}

// New returns a Handler answering with d.
func New(d Decider, o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Handler{d: d, log: o.Logger}
}

// HeadersToRemove is Envoy's http_service header naming the upstream headers to strip.
const HeadersToRemove = "x-envoy-auth-headers-to-remove"

// ServeHTTP answers one check. The request body is never read.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := h.d.Decide(r.Context(), Request(r))
	if r.Context().Err() != nil {
		// The proxy gave up; nothing useful can be written, and never an allow.
		return
	}
	Write(w, d)
}

// Request translates an HTTP check request. The original method and URI come from the
// headers proxies set for forward auth (X-Forwarded-Method / X-Forwarded-Uri from Caddy and
// Traefik, X-Original-Method / X-Original-URI by nginx convention) and otherwise from the
// request line, which is what Envoy's http_service sends.
func Request(r *http.Request) *authz.Request {
	req := &authz.Request{
		Transport: "http",
		Method:    r.Method,
		Host:      r.Host,
		Headers:   make(map[string][]string, len(r.Header)),
	}
	for k, v := range r.Header {
		req.Headers[strings.ToLower(k)] = v
	}
	if m := firstOf(r.Header, "X-Forwarded-Method", "X-Original-Method"); m != "" {
		req.Method = m
	}
	if hst := r.Header.Get("X-Forwarded-Host"); hst != "" {
		req.Host = hst
	}
	uri := firstOf(r.Header, "X-Forwarded-Uri", "X-Original-Uri")
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	req.Path, req.Query, _ = strings.Cut(uri, "?")
	req.RequestID = r.Header.Get("X-Request-Id")
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		req.Principal = r.TLS.PeerCertificates[0].Subject.String()
	}
	return req
}

func firstOf(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
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
