// Package cors is bitd's CORS middleware: it lets browser pages served from an
// allowlist of origins call the HTTP API (the wasm client and the dashboard
// served from another host).
//
// Wiring (cmd/bitd, outermost after the request-ID middleware so that a
// refused preflight carries the request ID):
//
//	origins, err := cors.ParseOrigins(cfg.AllowedOrigins) // --allowed-origins "https://a.example,http://127.0.0.1:5173"
//	if err != nil { ... }
//	handler = cors.Middleware(origins)(handler)
//
// Behaviour:
//   - A request without an Origin header, or whose Origin is the server's own
//     (same-origin pages such as the dashboard at /), passes through unchanged.
//   - An allowed origin gets Access-Control-Allow-Origin (the origin itself),
//     Access-Control-Expose-Headers: X-Request-Id, Retry-After, and every
//     response carries Vary: Origin.
//   - A preflight (OPTIONS with Access-Control-Request-Method) from an allowed
//     origin is answered 204 with Access-Control-Allow-Methods,
//     Access-Control-Allow-Headers and Access-Control-Max-Age; it never
//     reaches the wrapped handler.
//   - A preflight from an origin that is not allowed is answered 403 with the
//     JSON error body (code "cors_origin_not_allowed"); any other request from
//     such an origin is served without CORS headers, so the browser hides the
//     answer from the page.
//
// The entry "*" allows every origin. No credentials (cookies) are involved:
// the API authenticates with the Authorization header, so
// Access-Control-Allow-Credentials is never sent.
package cors

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

// AllowedMethods is the value of Access-Control-Allow-Methods.
const AllowedMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// AllowedHeaders is the value of Access-Control-Allow-Headers: the request
// headers the clients send.
const AllowedHeaders = "Authorization, Content-Type, Idempotency-Key, X-Request-Id, Accept, X-Bitkit-Account"

// ExposedHeaders is the value of Access-Control-Expose-Headers: the response
// headers a page may read.
const ExposedHeaders = "X-Request-Id, Retry-After"

// MaxAge is the value of Access-Control-Max-Age, in seconds, for preflights.
const MaxAge = "600"

// ParseOrigins splits a comma-separated allowlist (the --allowed-origins flag)
// into normalised origins and validates each: an origin is "*" or
// scheme://host[:port] with scheme http or https and no path, query or
// fragment. An empty string yields an empty list (no cross-origin access).
func ParseOrigins(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		o, err := normalise(part)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func normalise(o string) (string, error) {
	if o == "*" {
		return o, nil
	}
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("cors: allowed origin %q is not an origin: write it as scheme://host[:port] (for example https://app.example.com or http://127.0.0.1:5173) or * for any", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// Middleware returns the CORS middleware for the given allowlist. Entries are
// normalised as ParseOrigins does; entries that are not origins are ignored
// (validate them with ParseOrigins first to report them). It is safe for
// concurrent use.
func Middleware(origins []string) func(http.Handler) http.Handler {
	allowed := make(map[string]bool, len(origins))
	any := false
	for _, o := range origins {
		n, err := normalise(strings.TrimSpace(o))
		if err != nil {
			continue
		}
		if n == "*" {
			any = true
		}
		allowed[n] = true
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Add("Vary", "Origin")
			origin := r.Header.Get("Origin")
			if origin == "" || sameOrigin(r, origin) {
				next.ServeHTTP(w, r)
				return
			}
			ok := any || allowed[strings.ToLower(origin)]
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if !ok {
				if preflight {
					apierr.Write(w, r, apierr.New(http.StatusForbidden, "cors_origin_not_allowed",
						"origin %q may not call this API from a browser: add it to bitd's --allowed-origins list", origin))
					return
				}
				next.ServeHTTP(w, r)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", ExposedHeaders)
			if preflight {
				h.Add("Vary", "Access-Control-Request-Method")
				h.Add("Vary", "Access-Control-Request-Headers")
				h.Set("Access-Control-Allow-Methods", AllowedMethods)
				h.Set("Access-Control-Allow-Headers", AllowedHeaders)
				h.Set("Access-Control-Max-Age", MaxAge)
				w.WriteHeader(http.StatusNoContent)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// sameOrigin reports whether origin names the host the request was sent to
// (a page served by bitd itself). Browsers send Origin on same-origin POSTs.
func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, r.Host)
}
