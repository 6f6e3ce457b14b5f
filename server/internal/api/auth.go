package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/clientaddr"
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
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		cred, present := bearer(r)
		if !present {
			if required {
				return apierr.Unauthorized("authentication required: send \"Authorization: Bearer <API key or access token>\"")
			}
			next.ServeHTTP(w, r)
			return nil
		}
		if cred == "" {
			return apierr.Unauthorized("malformed Authorization header: use \"Authorization: Bearer <API key or access token>\"")
		}
		if strings.HasPrefix(cred, store.RefreshTokenPrefix) {
			return apierr.Unauthorized("a refresh token is not accepted as a bearer credential: trade it for an access token with POST /auth/v1/refresh {\"refresh_token\": …}")
		}
		p, err := s.acc.Principal(r.Context(), cred)
		if err != nil {
			return err
		}
		next.ServeHTTP(w, r.WithContext(authn.With(r.Context(), p)))
		return nil
	})
}

type loginReq struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// clientAddr is the client's address: the TCP peer's, or behind a trusted
// balancer the one it forwarded (clientaddr.Trusted.Middleware).
func clientAddr(r *http.Request) string { return clientaddr.Host(r.RemoteAddr) }

// loginHashWait is how long a login waits for a password-hashing slot before
// answering 429 login_busy.
const loginHashWait = time.Second

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	if p := authn.From(r.Context()); p != nil && p.Kind == authn.KindServiceAccount {
		return apierr.Forbidden("service accounts cannot log in: they authenticate only with their API keys")
	}
	var req loginReq
	if err := DecodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.Username == "" {
		return missing("username")
	}
	if req.Password == "" {
		return missing("password")
	}
	// Reserve, then settle: the attempt counts as a failure before the
	// password is verified, so a concurrent burst (on any replica) gets at
	// most the limit verified. Each path below settles the reservation
	// once, before it answers.
	att, wait, busy, err := s.limiter.reserve(r.Context(), req.Username, clientAddr(r))
	if err != nil {
		return err
	}
	if wait > 0 {
		s.o.Metrics.LoginLimited("failures")
		e := apierr.New(http.StatusTooManyRequests, "rate_limited", "too many failed logins; try again in %d seconds", int((wait+time.Second-1)/time.Second))
		e.RetryAfter = wait
		return e
	}
	if busy {
		s.o.Metrics.LoginLimited("busy")
		return loginBusy()
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
		return err
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
		s.o.Metrics.LoginLimited("busy")
		return loginBusy()
	}
	if verr != nil && r.Context().Err() != nil {
		return r.Context().Err()
	}
	if verr != nil {
		s.log.ErrorContext(r.Context(), "stored password hash is unreadable", "user", req.Username, "err", verr)
	}
	if u == nil || u.PasswordHash == "" || !ok {
		settle(s.limiter.fail)
		s.o.Metrics.LoginFailed()
		return apierr.New(http.StatusUnauthorized, "invalid_credentials", "invalid username or password")
	}
	settle(s.limiter.succeed)
	pair, err := s.st.CreateSession(r.Context(), u.ID, s.sessionTTL())
	if err != nil {
		return err
	}
	writePair(w, pair)
	return nil
}

func (s *Server) sessionTTL() store.SessionTTL {
	return store.SessionTTL{Access: s.o.TokenTTL, Idle: s.o.RefreshIdle, Absolute: s.o.RefreshLifetime}
}

// secondsUntil is the whole seconds until t, at least 1.
func secondsUntil(t time.Time) int64 {
	return max(1, int64(time.Until(t).Round(time.Second)/time.Second))
}

// writePair answers a login or refresh: the access token with its lifetime,
// and the refresh token with the time it may stay unused.
func writePair(w http.ResponseWriter, p *store.TokenPair) {
	apierr.WriteJSON(w, http.StatusOK, map[string]any{
		"access_token":       p.AccessToken,
		"expires_in":         secondsUntil(p.AccessExpires),
		"token_type":         "Bearer",
		"refresh_token":      p.RefreshToken,
		"refresh_expires_in": secondsUntil(p.RefreshExpires),
	})
}

type refreshReq struct {
	RefreshToken string `json:"refresh_token"`
}

// readRefreshToken decodes {"refresh_token": "bkr_..."}.
func readRefreshToken(r *http.Request) (string, error) {
	var req refreshReq
	if err := DecodeJSON(r, &req, false); err != nil {
		return "", err
	}
	if req.RefreshToken == "" {
		return "", missing("refresh_token")
	}
	if !strings.HasPrefix(req.RefreshToken, store.RefreshTokenPrefix) {
		return "", apierr.BadRequest("invalid_field", "refresh_token is not a refresh token (they start with %q): send the refresh_token that /auth/v1/login or /auth/v1/refresh answered, not an access token or API key", store.RefreshTokenPrefix)
	}
	return req.RefreshToken, nil
}

// refreshFailed is the 401 of a refresh token that cannot be traded.
func refreshFailed(err error) *apierr.Error {
	msg := "the refresh token is unknown"
	switch {
	case errors.Is(err, store.ErrRefreshExpired):
		msg = "the refresh token expired (the session was idle too long or reached its lifetime)"
	case errors.Is(err, store.ErrRefreshRevoked):
		msg = "the session of this refresh token was revoked (logout, password change, or a reused refresh token)"
	case errors.Is(err, store.ErrRefreshReused):
		msg = "this refresh token was already used once; as it may have been copied, its whole session is now revoked"
	}
	return apierr.New(http.StatusUnauthorized, "invalid_refresh_token", "%s: log in again (POST /auth/v1/login)", msg)
}

// refresh trades a refresh token for a new access token and refresh token
// (POST /auth/v1/refresh); the presented one is used up.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	tok, err := readRefreshToken(r)
	if err != nil {
		return err
	}
	res, err := s.st.RefreshSession(r.Context(), tok, s.sessionTTL())
	s.revoked(res.RevokedAccessID)
	switch {
	case errors.Is(err, store.ErrRefreshUnknown), errors.Is(err, store.ErrRefreshExpired),
		errors.Is(err, store.ErrRefreshRevoked), errors.Is(err, store.ErrRefreshReused):
		if errors.Is(err, store.ErrRefreshReused) {
			s.log.WarnContext(r.Context(), "a used refresh token was presented again; its session is revoked",
				"request_id", apierr.RequestID(r.Context()), "client", clientAddr(r))
		}
		return refreshFailed(err)
	case err != nil:
		return err
	}
	writePair(w, res.Pair)
	return nil
}

// revokeRefresh ends the session of a refresh token (POST /auth/v1/revoke):
// every refresh token and access token of it stops working. Revoking a
// revoked session again answers {} too.
func (s *Server) revokeRefresh(w http.ResponseWriter, r *http.Request) error {
	tok, err := readRefreshToken(r)
	if err != nil {
		return err
	}
	ids, err := s.st.RevokeSessionByRefreshToken(r.Context(), tok)
	if errors.Is(err, store.ErrRefreshUnknown) {
		return refreshFailed(err)
	}
	if err != nil {
		return err
	}
	s.revoked(ids)
	apierr.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// loginBusy is the 429 of a login that was not checked because the server
// is busy with others (hashing slots, or as many attempts for the same
// user or address in flight as the limit allows): retry in a second.
func loginBusy() *apierr.Error {
	e := apierr.New(http.StatusTooManyRequests, "login_busy", "the server is busy checking other logins; retry in a second")
	e.RetryAfter = time.Second
	return e
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	p := authn.From(r.Context())
	if p.Credential != authn.CredToken {
		return apierr.BadRequest("not_a_token", "DELETE /auth/v1/token revokes the access token it is called with; to revoke an API key use DELETE /v2beta/api-key/?api_key=...")
	}
	if err := s.st.RevokeAccessToken(r.Context(), p.CredentialID); err != nil {
		return err
	}
	// The login session the token belongs to ends with it: its refresh
	// token and its other access tokens.
	ids, err := s.st.RevokeSessionOfAccessToken(r.Context(), p.CredentialID)
	if err != nil {
		return err
	}
	s.revoked(append(ids, p.CredentialID))
	apierr.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}
