package api

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// bearer returns the credential of an "Authorization: Bearer X" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(cred), true
}

// authenticate puts the caller's principal into the request context. With
// required, a request without a credential is refused with 401; a
// credential that is unknown, revoked or expired is always refused.
func (s *Server) authenticate(next http.Handler, required bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, present := bearer(r)
		if !present {
			if required {
				apierr.Write(w, r, apierr.Unauthorized("authentication required: send \"Authorization: Bearer <API key or access token>\""))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if cred == "" {
			apierr.Write(w, r, apierr.Unauthorized("malformed Authorization header: use \"Authorization: Bearer <API key or access token>\""))
			return
		}
		p, err := s.acc.Principal(r.Context(), cred)
		if err != nil {
			apierr.Write(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(authn.With(r.Context(), p)))
	})
}

type loginReq struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// loginHashWait is how long a login waits for a password-hashing slot before
// answering 429 login_busy.
const loginHashWait = time.Second

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if p := authn.From(r.Context()); p != nil && p.Kind == authn.KindServiceAccount {
		apierr.Write(w, r, apierr.Forbidden("service accounts cannot log in: they authenticate only with their API keys"))
		return
	}
	var req loginReq
	if err := DecodeJSON(r, &req, false); err != nil {
		apierr.Write(w, r, err)
		return
	}
	if req.Username == "" {
		apierr.Write(w, r, missing("username"))
		return
	}
	if req.Password == "" {
		apierr.Write(w, r, missing("password"))
		return
	}
	userKey, addrKey := "u:"+strings.ToLower(req.Username), "a:"+clientAddr(r)
	// Reserve, then settle: the attempt counts as a failure before the
	// password is verified, so a concurrent burst gets at most the limit
	// verified. Each path below settles the reservation once, before it answers.
	att, wait, busy := s.limiter.reserve(userKey, addrKey)
	if wait > 0 {
		e := apierr.New(http.StatusTooManyRequests, "rate_limited", "too many failed logins; try again in %d seconds", int((wait+time.Second-1)/time.Second))
		e.RetryAfter = wait
		apierr.Write(w, r, e)
		return
	}
	if busy {
		apierr.Write(w, r, loginBusy())
		return
	}
	settled := false
	settle := func(f func(*attempt)) {
		settled = true
		f(att)
	}
	defer func() {
		if !settled { // no verdict (busy, store error, client gone)
			s.limiter.cancel(att)
		}
	}()
	u, err := s.st.UserByName(r.Context(), req.Username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		apierr.Write(w, r, err)
		return
	}
	hash := secret.DummyHash
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	// Every login, known user or not, waits for one of the process-wide
	// hashing slots so a flood cannot exhaust memory; a short bounded wait,
	// then 429 (not 5xx: the server is healthy, just busy).
	ok, verr := secret.VerifyPasswordWait(r.Context(), loginHashWait, hash, req.Password)
	if errors.Is(verr, secret.ErrBusy) {
		apierr.Write(w, r, loginBusy())
		return
	}
	if verr != nil && r.Context().Err() != nil {
		apierr.Write(w, r, r.Context().Err())
		return
	}
	if verr != nil {
		s.log.ErrorContext(r.Context(), "stored password hash is unreadable", "user", req.Username, "err", verr)
	}
	if u == nil || u.PasswordHash == "" || !ok {
		settle(s.limiter.fail)
		apierr.Write(w, r, apierr.New(http.StatusUnauthorized, "invalid_credentials", "invalid username or password"))
		return
	}
	settle(s.limiter.succeed)
	tok, exp, err := s.st.CreateAccessToken(r.Context(), u.ID, s.o.TokenTTL)
	if err != nil {
		apierr.Write(w, r, err)
		return
	}
	secs := int64(time.Until(exp).Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": secs, "token_type": "Bearer"})
}

// loginBusy is the 429 of a login that was not checked because the server
// is busy with others (hashing slots, or as many attempts for the same
// user or address in flight as the limit allows): retry in a second.
func loginBusy() *apierr.Error {
	e := apierr.New(http.StatusTooManyRequests, "login_busy", "the server is busy checking other logins; retry in a second")
	e.RetryAfter = time.Second
	return e
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	p := authn.From(r.Context())
	if p.Credential != authn.CredToken {
		apierr.Write(w, r, apierr.BadRequest("not_a_token", "DELETE /auth/v1/token revokes the access token it is called with; to revoke an API key use DELETE /v2beta/api-key/?api_key=..."))
		return
	}
	if err := s.st.RevokeAccessToken(r.Context(), p.CredentialID); err != nil {
		apierr.Write(w, r, err)
		return
	}
	if s.o.OnRevokeCredential != nil {
		s.o.OnRevokeCredential(p.CredentialID)
	}
	apierr.WriteJSON(w, http.StatusOK, struct{}{})
}

// loginLimiter counts failed logins per key in fixed windows. It lives in
// memory, so limits apply per bitd replica. A login reserves its attempt
// (counted as a failure) before the password is verified and settles it
// after, so N concurrent guesses get at most the limit verified:
//
//   - fail keeps the reservation;
//   - succeed resets the user's count (forgets its earlier failures) when
//     no other attempt for the user is in flight, and otherwise only keeps
//     its own reservation, so a burst that holds the right password still
//     gets no more than the limit verified; the address count gets the
//     reservation back;
//   - cancel (nothing was verified: busy, error, client gone) gives the
//     reservation back.
//
// It is safe for concurrent use.
type loginLimiter struct {
	mu       sync.Mutex
	perUser  int
	perAddr  int
	window   time.Duration
	counters map[string]*window
}

type window struct {
	n        int // failures and reservations in this window
	inFlight int // reservations not settled yet
	reset    time.Time
}

// attempt is one reservation: the windows it was counted in.
type attempt struct {
	keys []string
	wins []*window
}

func newLoginLimiter(perUser, perAddr int, w time.Duration) *loginLimiter {
	return &loginLimiter{perUser: perUser, perAddr: perAddr, window: w, counters: map[string]*window{}}
}

func (l *loginLimiter) limit(key string) int {
	if strings.HasPrefix(key, "u:") {
		return l.perUser
	}
	return l.perAddr
}

// reserve counts one attempt against every key, atomically. When a key's
// settled failures reach its limit nothing is counted and wait is how long
// the caller must wait; when a key is at its limit only because of attempts
// still in flight, nothing is counted and busy is true (their outcome is
// not known yet: retry shortly). Otherwise the attempt must be settled with
// fail, succeed or cancel.
func (l *loginLimiter) reserve(keys ...string) (a *attempt, wait time.Duration, busy bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if len(l.counters) > 100_000 { // drop expired, settled windows now and then
		for k, c := range l.counters {
			if now.After(c.reset) && c.inFlight == 0 {
				delete(l.counters, k)
			}
		}
	}
	for _, k := range keys {
		c := l.counters[k]
		if c == nil || now.After(c.reset) || c.n < l.limit(k) {
			continue
		}
		if c.n-c.inFlight >= l.limit(k) {
			wait = max(wait, c.reset.Sub(now))
		} else {
			busy = true
		}
	}
	if wait > 0 {
		return nil, wait, false
	}
	if busy {
		return nil, 0, true
	}
	a = &attempt{keys: keys, wins: make([]*window, len(keys))}
	for i, k := range keys {
		c := l.counters[k]
		if c == nil || now.After(c.reset) {
			// A window still holding attempts in flight is replaced; their
			// settlement then changes only the expired window.
			c = &window{reset: now.Add(l.window)}
			l.counters[k] = c
		}
		c.n++
		c.inFlight++
		a.wins[i] = c
	}
	return a, 0, false
}

// fail settles a as a failed login: it stays counted.
func (l *loginLimiter) fail(a *attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range a.wins {
		c.inFlight--
	}
}

// succeed settles a as a successful login.
func (l *loginLimiter) succeed(a *attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, c := range a.wins {
		c.inFlight--
		switch {
		case !strings.HasPrefix(a.keys[i], "u:"):
			c.n--
		case c.inFlight == 0:
			c.n = 0
		}
	}
}

// cancel settles a as never verified: its reservation is given back.
func (l *loginLimiter) cancel(a *attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range a.wins {
		c.inFlight--
		c.n--
	}
}
