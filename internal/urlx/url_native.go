//go:build !js

package urlx

import "net/url"

type (
	// URL is net/url.URL.
	URL = url.URL
	// Values is net/url.Values.
	Values = url.Values
	// Error is net/url.Error.
	Error = url.Error
	// Userinfo is net/url.Userinfo.
	Userinfo = url.Userinfo
)

// Parse is net/url.Parse.
func Parse(rawURL string) (*URL, error) { return url.Parse(rawURL) }

// ParseQuery is net/url.ParseQuery.
func ParseQuery(query string) (Values, error) { return url.ParseQuery(query) }

// PathEscape is net/url.PathEscape.
func PathEscape(s string) string { return url.PathEscape(s) }

// QueryEscape is net/url.QueryEscape.
func QueryEscape(s string) string { return url.QueryEscape(s) }
