package fnquery

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/core"
)

// The settings both adapters read from their platform's environment
// (Lambda environment variables, Worker vars and secrets).
const (
	// EnvEndpoint is bitd's base URL, e.g. "https://bitd.example.com". Required.
	EnvEndpoint = "BITKIT_ENDPOINT"
	// EnvAPIKey is the API key queries run with.
	EnvAPIKey = "BITKIT_API_KEY"
	// EnvUsername and EnvPassword log in instead of an API key (Lambda only).
	EnvUsername = "BITKIT_USERNAME"
	EnvPassword = "BITKIT_PASSWORD"
	// EnvTimeoutMS bounds each query in milliseconds (Worker only; Lambda
	// uses the invocation's deadline).
	EnvTimeoutMS = "BITKIT_TIMEOUT_MS"
)

// ClientConfig says how NewClient builds a client from the environment.
type ClientConfig struct {
	// Getenv looks a setting up; "" means unset. Required.
	Getenv func(string) string
	// AllowPassword accepts BITKIT_USERNAME + BITKIT_PASSWORD when
	// BITKIT_API_KEY is unset. The token then lives in a memory cache owned
	// by the returned client: keep the client to reuse the token.
	AllowPassword bool
	// TokenCache, when set, keeps the token of a username/password login
	// instead of a memory cache (the Worker: its KV namespace, so that the
	// next request, a fresh instance, does not log in again).
	TokenCache core.TokenCache
	// How tells the operator how to set a variable, completing
	// "BITKIT_API_KEY is not set: ..." (e.g. "set it in the function's environment").
	How func(name string) string
	// Fetcher is the client's base transport; nil means core.DefaultFetcher
	// (net/http natively; the Worker sets one built on fetch).
	Fetcher core.Fetcher
	// UserAgent is sent with every request; "" keeps core's default.
	UserAgent string
}

// NewClient builds a core client from the environment. A missing or invalid
// setting is a 500 Error naming the variable, never its value.
func NewClient(cfg ClientConfig) (*core.Client, *Error) {
	how := cfg.How
	if how == nil {
		how = func(name string) string { return "set " + name + " in the environment" }
	}
	get := func(name string) string { return strings.TrimSpace(cfg.Getenv(name)) }
	endpoint := get(EnvEndpoint)
	if endpoint == "" {
		return nil, MissingConfig(EnvEndpoint, how(EnvEndpoint)+` to bitd's URL, e.g. "https://bitd.example.com"`)
	}
	opts := []core.Option{}
	if cfg.Fetcher != nil {
		opts = append(opts, core.WithFetcher(cfg.Fetcher))
	}
	if cfg.UserAgent != "" {
		opts = append(opts, core.WithUserAgent(cfg.UserAgent))
	}
	switch key, user, pass := get(EnvAPIKey), get(EnvUsername), cfg.Getenv(EnvPassword); {
	case key != "":
		opts = append(opts, core.WithAPIKey(key))
	case cfg.AllowPassword && user != "" && pass != "":
		tc := cfg.TokenCache
		if tc == nil {
			tc = core.NewMemoryTokenCache()
		}
		opts = append(opts, core.WithCredentials(core.UsernamePassword(user, pass, core.WithTokenCache(tc))))
	case cfg.AllowPassword && user != "":
		return nil, MissingConfig(EnvPassword, how(EnvPassword)+" (BITKIT_USERNAME is set), or set BITKIT_API_KEY instead")
	case cfg.AllowPassword:
		return nil, MissingConfig(EnvAPIKey, how(EnvAPIKey)+" (or BITKIT_USERNAME and BITKIT_PASSWORD)")
	default:
		return nil, MissingConfig(EnvAPIKey, how(EnvAPIKey))
	}
	c, err := core.NewClient(endpoint, opts...)
	if err != nil {
		// core's message names the endpoint without user info.
		return nil, &Error{Status: http.StatusInternalServerError, Code: "invalid_configuration",
			Message: fmt.Sprintf("%s is invalid: %v", EnvEndpoint, err)}
	}
	return c, nil
}

// TimeoutFromEnv reads BITKIT_TIMEOUT_MS (a positive integer of
// milliseconds); unset means def.
func TimeoutFromEnv(getenv func(string) string, def time.Duration) (time.Duration, *Error) {
	v := strings.TrimSpace(getenv(EnvTimeoutMS))
	if v == "" {
		return def, nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return 0, &Error{Status: http.StatusInternalServerError, Code: "invalid_configuration",
			Message: fmt.Sprintf("%s=%q is not a positive number of milliseconds", EnvTimeoutMS, v)}
	}
	return time.Duration(ms) * time.Millisecond, nil
}
