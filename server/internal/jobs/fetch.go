package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/ingest"
)

// refusedPrefixes are address ranges file_url may not reach besides what
// netip classifies (loopback, private, link-local, multicast, unspecified).
var refusedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach IPv4 private space
}

// refusedAddr reports whether a dialed address is not public.
func refusedAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsValid() {
		return true
	}
	for _, p := range refusedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

type refusedError struct{ addr string }

func (e *refusedError) Error() string { return "refused to connect to non-public address " + e.addr }

// fetchClient returns the HTTP client of file_url fetches. The check runs
// in the dialer's Control hook on the address actually dialed, after DNS
// resolution, so redirects and DNS rebinding cannot reach a refused address.
// Environment proxies are ignored.
func (s *Service) fetchClient() *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second}
	if !s.cfg.AllowPrivateURLs {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || refusedAddr(ap.Addr()) {
				return &refusedError{addr: address}
			}
			return nil
		}
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
		}
		return nil
	}}
}

// safeURL is u without user info and query, for messages and logs.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// fetchURL downloads raw into the file f with the configured limits.
func (s *Service) fetchURL(ctx context.Context, raw string, f *os.File) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.URLFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return 0, &ingest.Error{Type: "invalid_url", Message: "file_url is not a valid URL", Details: map[string]any{"file_url": safeURL(raw)}}
	}
	resp, err := s.fetchClient().Do(req)
	if err != nil {
		var re *refusedError
		if errors.As(err, &re) {
			return 0, &ingest.Error{Type: "url_refused", Message: fmt.Sprintf("file_url %s resolves to a private, loopback or otherwise non-public address (%s); only public addresses may be fetched", safeURL(raw), re.addr),
				Details: map[string]any{"file_url": safeURL(raw), "address": re.addr}}
		}
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return 0, &ingest.Error{Type: "url_timeout", Message: fmt.Sprintf("fetching file_url %s took longer than %s", safeURL(raw), s.cfg.URLFetchTimeout),
				Details: map[string]any{"file_url": safeURL(raw)}}
		}
		return 0, &ingest.Error{Type: "url_fetch_failed", Message: fmt.Sprintf("fetching file_url %s failed: %v", safeURL(raw), scrubURLError(err)),
			Details: map[string]any{"file_url": safeURL(raw)}}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, &ingest.Error{Type: "url_fetch_failed", Message: fmt.Sprintf("fetching file_url %s answered HTTP %d", safeURL(raw), resp.StatusCode),
			Details: map[string]any{"file_url": safeURL(raw), "status": resp.StatusCode}}
	}
	limit := s.cfg.MaxURLFetchBytes
	if resp.ContentLength > limit {
		return 0, tooLarge(limit)
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return n, &ingest.Error{Type: "url_timeout", Message: fmt.Sprintf("fetching file_url %s took longer than %s", safeURL(raw), s.cfg.URLFetchTimeout),
				Details: map[string]any{"file_url": safeURL(raw)}}
		}
		return n, fmt.Errorf("fetch file_url: %w", scrubURLError(err))
	}
	if n > limit {
		return n, tooLarge(limit)
	}
	return n, nil
}

func tooLarge(limit int64) error {
	return &ingest.Error{Type: "too_large", Message: fmt.Sprintf("the file is larger than the server's limit of %d bytes: split it or ask the operator to raise the limit", limit),
		Details: map[string]any{"limit_bytes": limit}}
}

// scrubURLError drops the URL (which may carry credentials) from a client error.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
